"""Calendar triggers: alerts at the dates of a list, at fixed instants and at a yearly date,
as deadlines: once per date, as of their due time, the same in a replay as step by step."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.calendars import Calendar, is_birthday
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import EventError, decode_event, format_ts, to_epoch_ms
from taggers.localdays import LocalDays, load_zone
from taggers.outputs import Alert, Output
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.yaml_source import RuleSetError
from tests.support.core import START_MS, make_event

HOLIDAYS = """\
# date name
2026-02-17 春节
2026-06-18 618
2026-11-11 双11
"""
RULES = """\
timezone: Asia/Shanghai
params:
  sale_start: 2026-03-01T10:00:00+08:00
lists:
  holidays: {file: lists/holidays.txt}
aggregates:
  orders: {count: purchase}
  birthday: {last: props.birthday, of: member_join}
  joined_at: {last_ts: member_join}
alerts:
  holiday_greeting:
    severity: low
    calendar: {dates: holidays, time: "09:00"}
    when: "orders >= 2"
  birthday_soon: {calendar: {yearly: birthday, before: 3d, time: "09:00"}}
  sale_reminder: {calendar: {at: [sale_start, "2026-04-01T10:00:00+08:00"], before: 1h}}
"""


def write(folder: Path, rules: str = RULES, holidays: str = HOLIDAYS) -> Path:
    (folder / "lists").mkdir(exist_ok=True)
    (folder / "lists" / "holidays.txt").write_text(holidays, encoding="utf-8")
    (folder / "rules.yaml").write_text(rules, encoding="utf-8")
    return folder


def problems(folder: Path, rules: str, holidays: str = HOLIDAYS) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        load_rules(write(folder, rules, holidays))
    return [str(p).replace(str(folder) + "/", "") for p in caught.value.problems]


def at(text: str) -> float:
    """The day offset (from 2026-01-01Z, as make_event takes) of an ISO time."""
    return (to_epoch_ms(text) - START_MS) / DAY_MS


def alerts(outputs: list[Output]) -> list[tuple[str, str, dict[str, object]]]:
    return [(o.name, format_ts(o.at), o.details) for o in outputs if isinstance(o, Alert)]


def test_dated_alerts_fire_at_their_local_time_with_the_dates_name(tmp_path: Path) -> None:
    engine = Engine(load_rules(write(tmp_path)))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=1, amount=10))
    engine.apply(profile, make_event("purchase", day=2, amount=10))
    fired = engine.advance(profile, to_epoch_ms("2027-01-01T00:00:00Z"))
    assert [a for a in alerts(fired) if a[0] == "holiday_greeting"] == [
        ("holiday_greeting", "2026-02-17T01:00:00.000Z", {"date": "2026-02-17", "name": "春节"}),
        ("holiday_greeting", "2026-06-18T01:00:00.000Z", {"date": "2026-06-18", "name": "618"}),
        ("holiday_greeting", "2026-11-11T01:00:00.000Z", {"date": "2026-11-11", "name": "双11"}),
    ]
    assert [a for a in alerts(fired) if a[0] == "sale_reminder"] == [
        ("sale_reminder", "2026-03-01T01:00:00.000Z", {"date": "2026-03-01"}),
        ("sale_reminder", "2026-04-01T01:00:00.000Z", {"date": "2026-04-01"}),
    ]


def test_a_calendar_deadline_is_set_only_while_when_holds(tmp_path: Path) -> None:
    """One order: `when` does not hold, so the holidays make no deadline (the sale does);
    the second order makes it hold, and the next holiday is the deadline."""
    rules = RULES.replace("  sale_reminder:", "  # sale_reminder:")
    engine = Engine(load_rules(write(tmp_path, rules)))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=1, amount=10))
    assert profile.due is None
    engine.apply(profile, make_event("purchase", day=2, amount=10))
    assert profile.due == to_epoch_ms("2026-02-17T09:00:00+08:00")


def test_a_date_whose_when_does_not_hold_then_is_not_fired_late(tmp_path: Path) -> None:
    engine = Engine(load_rules(write(tmp_path)))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=1, amount=10))
    # The second order comes after 春节: 春节 is not greeted late, 618 is greeted.
    outputs = engine.apply(
        profile, make_event("purchase", day=at("2026-03-01T00:00:00Z"), amount=10)
    )
    outputs += engine.advance(profile, to_epoch_ms("2026-07-01T00:00:00Z"))
    assert [a[2] for a in alerts(outputs) if a[0] == "holiday_greeting"] == [
        {"date": "2026-06-18", "name": "618"}
    ]


def test_birthdays_fire_yearly_before_the_date_and_feb_29_on_feb_28(tmp_path: Path) -> None:
    engine = Engine(load_rules(write(tmp_path)))
    fired = {}
    for user, birthday in (("leap", "2000-02-29"), ("plain", "07-01")):
        profile = engine.new_profile(user)
        engine.apply(profile, make_event("member_join", user=user, day=1, birthday=birthday))
        outputs = engine.advance(profile, to_epoch_ms("2029-01-01T00:00:00Z"))
        fired[user] = [(a[1], a[2]) for a in alerts(outputs) if a[0] == "birthday_soon"]
    assert fired["leap"] == [
        ("2026-02-25T01:00:00.000Z", {"date": "2026-02-28"}),
        ("2027-02-25T01:00:00.000Z", {"date": "2027-02-28"}),
        ("2028-02-26T01:00:00.000Z", {"date": "2028-02-29"}),
    ]
    assert [details["date"] for _, details in fired["plain"]] == [
        "2026-07-01",
        "2027-07-01",
        "2028-07-01",
    ]
    assert fired["plain"][0][0] == "2026-06-28T01:00:00.000Z"  # 3 days before, 09:00 local


def test_a_yearly_date_is_the_same_whether_made_anew_or_remembered_and_per_zone() -> None:
    # A calendar remembers the yearly occurrences it made: each zone keeps its own, and
    # what it remembers is what a calendar that made none gives.
    def birthday_soon() -> Calendar:
        return Calendar(yearly="birthday", shift_ms=-3 * DAY_MS, time_ms=9 * 3_600_000)

    remembering = birthday_soon()
    floors = [
        to_epoch_ms(f"{year}-{month:02d}-15T00:00:00Z")
        for year in (2026, 2027)
        for month in (1, 6, 12)
    ]
    for name in ("Asia/Shanghai", "America/New_York", "Asia/Shanghai"):
        days = LocalDays(load_zone(name), name)
        for floor in floors:
            for birthday in ("07-01", "2000-02-29", "01-02"):
                fresh = birthday_soon().next_after(floor, birthday, days)
                assert remembering.next_after(floor, birthday, days) == fresh
    assert remembering.made  # it did remember


def test_before_and_after_may_name_a_duration_param(tmp_path: Path) -> None:
    rules = RULES.replace("params:\n", "params:\n  birthday_lead: 5d\n").replace(
        "before: 3d,", "before: birthday_lead,"
    )
    engine = Engine(load_rules(write(tmp_path, rules)))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("member_join", day=1, birthday="07-01"))
    outputs = engine.advance(profile, to_epoch_ms("2026-12-31T00:00:00Z"))
    assert [a[1] for a in alerts(outputs) if a[0] == "birthday_soon"] == [
        "2026-06-26T01:00:00.000Z"
    ]
    wrong = RULES.replace("before: 3d,", "before: orders,")
    assert problems(tmp_path, wrong) == [
        "rules.yaml:15:56: 'orders' is not a duration param (hint: write a duration (3d) or"
        " the name of a param like birthday_lead: 3d)"
    ]


def test_a_timestamp_aggregate_is_a_yearly_date_too(tmp_path: Path) -> None:
    rules = RULES + "  anniversary: {calendar: {yearly: joined_at}}\n"
    engine = Engine(load_rules(write(tmp_path, rules)))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("member_join", day=at("2026-05-20T12:00:00+08:00")))
    outputs = engine.advance(profile, to_epoch_ms("2028-01-01T00:00:00Z"))
    assert [(a[1], a[2]) for a in alerts(outputs) if a[0] == "anniversary"] == [
        ("2027-05-19T16:00:00.000Z", {"date": "2027-05-20"})
    ]


_TIMES = st.floats(0, 400)


@settings(max_examples=40, deadline=None)
@given(
    events=st.lists(st.tuples(_TIMES, st.sampled_from(["view", "purchase"])), max_size=8),
    sweeps=st.lists(_TIMES, max_size=6),
)
def test_each_date_fires_once_whatever_the_interleaving(
    tmp_path_factory: pytest.TempPathFactory,
    events: list[tuple[float, str]],
    sweeps: list[float],
) -> None:
    """Events (which may make `when` hold or not) and sweeps at any times: each holiday
    fires at most once, at its due time, and exactly the holidays due while `when` held
    after the second order are greeted."""
    folder = tmp_path_factory.mktemp("calendar")
    engine = Engine(load_rules(write(folder, RULES.replace("orders >= 2", "orders >= 1"))))
    profile = engine.new_profile("u1")
    outputs: list[Output] = []
    steps = sorted([(t, kind) for t, kind in events] + [(t, "sweep") for t in sweeps])
    first_order = None
    for day, kind in steps:
        if kind == "sweep":
            outputs += engine.advance(profile, START_MS + int(day * DAY_MS))
        else:
            event = (
                make_event(kind, day=day, amount=1)
                if kind == "purchase"
                else make_event(kind, day=day)
            )
            outputs += engine.apply(profile, event)
            if kind == "purchase" and first_order is None:
                first_order = START_MS + int(day * DAY_MS)
    end = START_MS + 401 * DAY_MS
    outputs += engine.advance(profile, end)
    greeted = [a for a in alerts(outputs) if a[0] == "holiday_greeting"]
    dates = [details["date"] for _, _, details in greeted]
    assert len(dates) == len(set(dates))
    expected = [
        d
        for d in ("2026-02-17", "2026-06-18", "2026-11-11")
        if first_order is not None and to_epoch_ms(d + "T09:00:00+08:00") > first_order
    ]
    assert dates == expected
    for _, when, details in greeted:
        assert when == format_ts(to_epoch_ms(f"{details['date']}T09:00:00+08:00"))


def test_a_replay_equals_the_engine_step_by_step(tmp_path: Path) -> None:
    rules = load_rules(write(tmp_path))
    lines = []
    for n, user in enumerate(["a", "b", "c"]):
        lines.append(make_event("member_join", user=user, day=n, birthday=f"0{n + 2}-15"))
        lines.append(make_event("purchase", user=user, day=n + 1, amount=5))
        lines.append(make_event("purchase", user=user, day=n + 2, amount=5))
        lines.append(make_event("purchase", user=user, day=n + 60, amount=5))
    lines.sort(key=lambda e: e.ts)
    replayed = [
        o
        for o in Replay(Engine(rules)).run([e.model_dump_json() for e in lines])
        if isinstance(o, Alert)
    ]
    engine = Engine(rules)
    profiles = {u: engine.new_profile(u) for u in "abc"}
    stepped: list[Output] = []
    for event in lines:
        stepped += engine.apply(profiles[event.user_id], event)
    clock = sorted(e.ts for e in lines)[-2]  # the replay's clock: two users' latest time
    for profile in profiles.values():
        stepped += engine.advance(profile, clock)
    key = lambda o: (o.user_id, o.at, o.name)  # noqa: E731
    assert sorted(replayed, key=key) == sorted(
        (o for o in stepped if isinstance(o, Alert)), key=key
    )
    assert any(o.name == "holiday_greeting" for o in replayed)


# --- rule-file problems ------------------------------------------------------------------------


def test_an_unknown_list_is_a_problem(tmp_path: Path) -> None:
    found = problems(tmp_path, RULES.replace("dates: holidays", "dates: holiday"))
    assert found == ["rules.yaml:13:23: unknown list 'holiday' (hint: did you mean 'holidays'?)"]


def test_a_list_line_that_is_not_dated_is_a_problem_at_its_line(tmp_path: Path) -> None:
    found = problems(tmp_path, RULES, HOLIDAYS + "2026-02-30 nope\n11-11 双11\n")
    assert found == [
        "lists/holidays.txt:5:1: not a dated line: '2026-02-30 nope' (hint: a calendar's list"
        " has lines `YYYY-MM-DD name`, e.g. 2027-02-06 春节)",
        "lists/holidays.txt:6:1: not a dated line: '11-11 双11' (hint: a calendar's list has"
        " lines `YYYY-MM-DD name`, e.g. 2027-02-06 春节)",
    ]


def test_a_yearly_aggregate_of_the_wrong_type_is_a_problem(tmp_path: Path) -> None:
    found = problems(tmp_path, RULES.replace("yearly: birthday", "yearly: orders"))
    assert found == [
        "rules.yaml:15:38: a yearly date is a date text or a timestamp, but 'orders' is an int"
        " (hint: e.g. {last: props.birthday, of: member_join} or {last_ts: member_join})"
    ]


@pytest.mark.parametrize(
    ("calendar", "message"),
    [
        ('{dates: holidays, time: "9am"}', "not a time of day: '9am'"),
        ("{at: [orders]}", "not a timestamp param or time"),
        ("{yearly: nobody}", "unknown aggregate 'nobody'"),
        ("{dates: holidays, yearly: birthday}", "exactly one of dates, at or yearly"),
        ("{yearly: birthday, before: 1d, after: 1d}", "either 'before' or 'after'"),
        ("{at: [sale_start], time: '09:00'}", "'time' goes with dates or yearly"),
    ],
)
def test_calendar_mistakes_are_problems(tmp_path: Path, calendar: str, message: str) -> None:
    rules = RULES + f"  broken: {{calendar: {calendar}}}\n"
    (found,) = problems(tmp_path, rules)
    assert found.startswith("rules.yaml:17:") and message in found


def test_a_calendar_alert_has_one_trigger(tmp_path: Path) -> None:
    rules = RULES + "  both: {upon: purchase, calendar: {dates: holidays}}\n"
    (found,) = problems(tmp_path, rules)
    assert "an alert has one trigger; found upon and calendar" in found


# --- birthdays in member_join ------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1990-06-20", "06-20", "02-29", "2000-02-29"])
def test_a_birthday_is_a_date_or_a_month_and_day(value: str) -> None:
    assert is_birthday(value)
    event = decode_event(
        orjson.dumps(
            {
                "event_id": "e",
                "user_id": "u",
                "type": "member_join",
                "ts": START_MS,
                "props": {"birthday": value},
            }
        )
    )
    assert event.props["birthday"] == value


@pytest.mark.parametrize("value", ["1990-02-29", "13-01", "1990/06/20", "", 19900620])
def test_a_bad_birthday_is_a_dead_letter(value: object) -> None:
    line = orjson.dumps(
        {
            "event_id": "e",
            "user_id": "u",
            "type": "member_join",
            "ts": START_MS,
            "props": {"birthday": value},
        }
    )
    with pytest.raises(EventError) as caught:
        decode_event(line)
    assert caught.value.reason == "schema" and "birthday" in caught.value.message


def test_a_replay_until_a_later_time_fires_the_dates_due_by_then(tmp_path: Path) -> None:
    engine = Engine(load_rules(write(tmp_path)))
    lines = [
        make_event("member_join", user=u, day=1, birthday="03-10").model_dump_json()
        for u in ("a", "b")
    ]
    fired = [o for o in Replay(engine).run(lines) if isinstance(o, Alert)]
    assert fired == []
    replay = Replay(Engine(load_rules(tmp_path)))
    until = to_epoch_ms("2026-03-08T00:00:00Z")
    later = [o for o in replay.run(lines, until=until) if isinstance(o, Alert)]
    assert sorted((o.user_id, o.name, format_ts(o.at)) for o in later) == [
        ("a", "birthday_soon", "2026-03-07T01:00:00.000Z"),
        ("a", "sale_reminder", "2026-03-01T01:00:00.000Z"),
        ("b", "birthday_soon", "2026-03-07T01:00:00.000Z"),
        ("b", "sale_reminder", "2026-03-01T01:00:00.000Z"),
    ]
    assert replay.clock == until
