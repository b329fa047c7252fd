"""`tagger demo`'s views: the state fed by decisions (streams/demo_state.py) against the
profiles a replay leaves, the live panel's text (streams/demo_view.py, rendered on a
recording console), the plain lines for a pipe, and which of the two a run gets."""

from __future__ import annotations

import io
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from streams.demo import DemoOptions, LiveViewError, PlainView, run_demo, wants_live_view
from streams.demo_state import (
    LOG_KEPT,
    RATE_WINDOW_SECONDS,
    DemoState,
    StackAddresses,
    WorkerNumbers,
    worker_numbers,
)
from streams.demo_view import LiveView, render, text_of
from taggers.bundled import BUNDLED_RULES
from taggers.display import describe_output, display_zone
from taggers.engine import Engine
from taggers.outputs import output_to_dict
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore

WHERE = StackAddresses(
    web="http://127.0.0.1:41001",
    broker="127.0.0.1:41002",
    redis="redis://127.0.0.1:41003/0",
    broker_pid=101,
    redis_pid=102,
    worker_pid=103,
    worker_log=Path("/tmp/tagger-demo-x/worker.log"),
    look_up="TAGGER_REDIS_URL=redis://127.0.0.1:41003/0 tagger profile",
)


def _tag(user: str, tag: str, op: str = "add") -> dict[str, Any]:
    return {"kind": "tag_change", "user_id": user, "person_id": user, "tag": tag, "op": op}


def _stage(user: str, to: str, from_: str | None = None) -> dict[str, Any]:
    return {"kind": "transition", "user_id": user, "person_id": user, "from": from_, "to": to}


def _alert(user: str, name: str) -> dict[str, Any]:
    return {"kind": "alert", "user_id": user, "person_id": user, "name": name}


def _state(started: float = 0.0) -> DemoState:
    """A state with decisions of every panel: stages, tags, alerts and dead letters."""
    state = DemoState(started=started, stages=("new", "active", "churned"))
    state.tick(started)
    for number in range(30):
        user = f"u{number:03d}"
        state.add_decision(_stage(user, "new"), f"line {number} stage")
        tag = "high_value" if number < 12 else "seed_user"
        state.add_decision(_tag(user, tag), f"line {number} tag")
    for number in range(5):
        state.add_decision(_stage(f"u{number:03d}", "active", "new"), f"moved u{number:03d}")
    for _ in range(3):
        state.add_decision(_alert("u001", "churn_risk"), "an alert")
    state.add_decision(_alert("u002", "koc_candidate"), "another alert")
    state.add_decision(_tag("u029", "seed_user", "remove"), "the last decision")
    state.add_dead_letter({"reason": "invalid_json", "error": "not JSON"})
    state.add_dead_letter({"reason": "schema", "error": "user_id: missing"})
    state.add_dead_letter({"reason": "schema", "error": "ts: missing"})
    state.add_sent(1500)
    state.worker = WorkerNumbers(handled=1400, lag=100)
    state.tick(started + 5.0)
    return state


def test_stages_and_tag_holders_are_those_the_profiles_end_with() -> None:
    # A shop with merges and forgotten people: what the outputs say, kept as a subscriber
    # keeps it, is what the store holds at the end.
    rules = load_rules(BUNDLED_RULES)
    store = MemoryStore()
    config = SimulationConfig(users=60, days=90, seed=3, identities=0.2, forgets=0.1)
    assert rules.lifecycle is not None
    state = DemoState(started=0.0, stages=tuple(rules.lifecycle.stages))
    kinds = set()
    for output in Replay(Engine(rules), store).run(simulate(config)):
        if not isinstance(output, BadLine):
            record = output_to_dict(output)
            kinds.add(record["kind"])
            state.add_decision(record, describe_output(record, rules.types, display_zone(rules)))
    assert {"identity_merge", "forgotten", "tag_change", "transition"} <= kinds
    stages, audiences = store.population(tuple(rules.lifecycle.stages))
    assert dict(state.stage_counts()) == stages
    assert sum(stages.values()) > 30
    held = {tag: count for tag, count in audiences.items() if count}
    assert dict(state.top_tags(len(held) + 5)) == held
    assert state.decisions == sum(state.tally.kinds.values()) > 0


def test_top_tags_are_the_most_held_now_and_removals_count() -> None:
    state = _state()
    # seed_user: 18 added, one removed; high_value: 12.
    assert state.top_tags(5) == [("seed_user", 17), ("high_value", 12)]
    assert state.top_tags(1) == [("seed_user", 17)]
    state.add_decision(_tag("u000", "seed_user", "remove"), "not held: changes nothing")
    assert state.top_tags(1) == [("seed_user", 17)]


def test_stages_list_the_rule_sets_in_order_then_others() -> None:
    state = _state()
    assert state.stage_counts() == [("new", 25), ("active", 5), ("churned", 0)]
    state.add_decision(_stage("u100", "vip"), "a stage of another rule version")
    assert state.stage_counts()[-1] == ("vip", 1)


def test_alerts_and_dead_letters_are_counted_by_name_and_reason() -> None:
    state = _state()
    assert state.alerts() == [("churn_risk", 3), ("koc_candidate", 1)]
    assert state.dead_letters == {"schema": 2, "invalid_json": 1}
    assert state.last_dead_letter == "ts: missing"
    assert state.last_user == "u029"


def test_rates_are_over_the_last_seconds() -> None:
    state = DemoState(started=0.0)
    assert state.rates(0.0) == (0.0, 0.0, 0.0)
    for second in range(21):  # 300 events a second for 10 s, then 100 a second
        state.add_sent(300 if second <= 10 else 100)
        state.worker = WorkerNumbers(handled=second * 50, lag=0)
        state.tick(float(second))
    events, decisions, handled = state.rates(20.0)
    assert events == pytest.approx(100, abs=1)
    assert decisions == 0
    assert handled == pytest.approx(50)
    assert 20.0 - RATE_WINDOW_SECONDS - 1 <= state._samples[0][0] <= 20.0 - RATE_WINDOW_SECONDS


def test_the_workers_numbers_come_from_its_metrics() -> None:
    exposition = "\n".join(
        [
            "# TYPE tagger_events_total counter",
            'tagger_events_total{type="order",outcome="applied"} 120.0',
            'tagger_events_total{type="view",outcome="redelivered"} 3.0',
            'tagger_events_total{type="unknown",outcome="dead"} 2.0',
            'tagger_events_total{type="identify",outcome="rekeyed"} 7.0',  # handled again
            "# TYPE tagger_consumer_lag_messages gauge",
            'tagger_consumer_lag_messages{topic="behaviour-events",partition="0"} 40.0',
            'tagger_consumer_lag_messages{topic="behaviour-events",partition="1"} 2.0',
            "# TYPE tagger_outputs_total counter",
            'tagger_outputs_total{kind="alert"} 9.0',
            "",
        ]
    )
    assert worker_numbers(exposition) == WorkerNumbers(handled=125, lag=42)


def test_before_the_worker_answers_its_numbers_are_dashes() -> None:
    screen = "\n".join(text_of(render(DemoState(started=0.0), WHERE, "v", 1.0), 120, 30))
    assert re.search(r"worker in +- │", screen) and re.search(r"worker lag +- │", screen)


def test_the_log_keeps_the_latest_decisions_only() -> None:
    state = DemoState(started=0.0)
    for number in range(LOG_KEPT + 50):
        state.add_decision(_tag(f"u{number}", "t"), f"decision {number}")
    assert len(state.log) == LOG_KEPT
    assert state.log[-1].line == f"decision {LOG_KEPT + 49}"
    assert state.decisions == LOG_KEPT + 50


def test_the_live_view_shows_the_numbers_and_where_everything_is() -> None:
    state = _state()
    screen = list(text_of(render(state, WHERE, "6a4d9e327e5d", 5.0), 120, 40))
    text = "\n".join(screen)
    assert len(screen) == 40 and max(map(len, screen)) <= 120
    for address in (WHERE.web, WHERE.broker, WHERE.redis, str(WHERE.worker_log)):
        assert address in text
    assert f"{WHERE.look_up} u029" in text  # the latest user, ready to look up
    assert "Ctrl-C stops everything" in text
    assert "rules 6a4d9e327e5d" in text and "5s" in screen[0]

    cells = [
        re.split(r"\s{2,}", cell.strip(), maxsplit=1) for line in screen for cell in line.split("│")
    ]
    numbers = {cell[0]: cell[1] for cell in cells if len(cell) == 2}

    def row(name: str) -> str:  # the number beside a name in the panel
        assert name in numbers, f"{name} is not shown:\n{text}"
        return numbers[name]

    assert row("sent") == "1500  300/s"  # in 5 s
    assert row("worker in") == "1400  280/s"
    assert row("worker lag") == "100"
    assert row("decisions") == "70   14/s"
    assert row("tag changes") == "31"
    assert row("transitions") == "35"
    assert (row("new"), row("active"), row("churned")) == ("25", "5", "0")
    assert (row("seed_user"), row("high_value")) == ("17", "12")
    assert (row("churn_risk"), row("koc_candidate")) == ("3", "1")
    assert (row("dead letters"), row("schema"), row("invalid_json")) == ("3", "2", "1")
    # The newest decisions at the bottom, as many as fit; the oldest scrolled away.
    assert "the last decision" in screen[-2]
    assert "line 0 stage" not in text


@pytest.mark.parametrize("height", [24, 40, 60])
def test_the_log_fills_what_the_panel_leaves(height: int) -> None:
    state = _state()
    screen = list(text_of(render(state, WHERE, "v", 5.0), 100, height))
    assert len(screen) == height
    top = next(number for number, line in enumerate(screen) if "latest decisions" in line)
    shown = [line for line in screen[top + 1 : -1] if line.strip("│ ")]
    assert len(shown) == height - top - 2  # every row inside the log's border is used
    assert [line.strip("│ ") for line in shown] == [d.line for d in state.log][-len(shown) :]


def test_on_80_columns_the_events_and_stages_keep_their_names() -> None:
    screen = "\n".join(text_of(render(_state(), WHERE, "v", 5.0), 80, 24))
    for shown in ("worker in", "worker lag", "decisions", "transitions", "churned"):
        assert re.search(rf"│ {shown} +[\d-]", screen), screen


def test_a_long_tag_name_is_cut_never_its_number() -> None:
    state = DemoState(started=0.0)
    for number in range(1234):
        state.add_decision(_tag(f"u{number}", "preferred_channel_mini_program_" * 3), "x")
    screen = "\n".join(text_of(render(state, WHERE, "v", 1.0), 100, 30))
    assert re.search(r"│ preferred_chan\w*… +1234 │", screen), screen
    assert "│ look up  TAGGER_REDIS_URL=" in screen  # the header's names, never cut


def test_many_alerts_keep_the_dead_letters_in_view() -> None:
    state = _state()
    for number in range(15):
        state.add_decision(_alert("u1", f"alert_{number:02d}"), "an alert")
    screen = "\n".join(text_of(render(state, WHERE, "v", 5.0), 120, 40))
    assert "dead letters" in screen and "more" in screen


class _Terminal(io.StringIO):
    """What a terminal would receive."""

    def isatty(self) -> bool:
        return True


def test_the_live_view_redraws_in_place_at_most_four_times_a_second() -> None:
    out = _Terminal()
    state = _state()
    with LiveView(out, WHERE, "v") as view:
        assert "\x1b[?1049h" in out.getvalue()  # the alternate screen: scrollback untouched
        view.show(state, 5.0)
        drawn = len(out.getvalue())
        assert WHERE.redis in out.getvalue()
        view.show(state, 5.1)  # too soon: not drawn again
        assert len(out.getvalue()) == drawn
        view.show(state, 5.3)
        assert len(out.getvalue()) > drawn
    assert out.getvalue().endswith("\x1b[?1049l") or "\x1b[?1049l" in out.getvalue()[-40:]


def test_plain_lines_print_the_decisions_and_where_everything_is_every_summary() -> None:
    out = io.StringIO()
    state = DemoState(started=0.0)
    with PlainView(out, WHERE, show=3) as view:
        for number in range(5):
            state.add_decision(_tag(f"u{number}", "t"), f"decision {number}")
        view.show(state, 0.2)
        state.add_decision(_tag("u8", "t"), "decision 5")
        state.add_decision(_tag("u9", "t"), "decision 6")
        view.show(state, 0.7)  # half a second later: room for one and a half lines
        state.add_decision(_tag("u10", "t"), "decision 7")
        state.add_sent(42)
        view.show(state, 5.1)  # room again, and a summary
    lines = out.getvalue().splitlines()
    # Three of the first five, picked evenly; one of the two that came next; the last.
    assert lines[:5] == ["decision 0", "decision 1", "decision 3", "decision 5", "decision 7"]
    assert lines[5].startswith("==     5s  events sent 42  tag changes 8")
    assert lines[6] == f"   look up a user: {WHERE.look_up} u10"
    assert WHERE.web in lines[7] and WHERE.broker in lines[7] and WHERE.redis in lines[7]
    assert "Ctrl-C stops everything" in lines[7]
    assert "\x1b" not in out.getvalue()  # no terminal codes in a file


def test_a_pipe_gets_plain_lines_a_terminal_the_live_view(tmp_path: Path) -> None:
    options = DemoOptions(rules_dir=BUNDLED_RULES)
    assert not wants_live_view(options, io.StringIO())
    primary, secondary = os.openpty()
    with os.fdopen(primary, "w") as _, os.fdopen(secondary, "w") as terminal:
        assert wants_live_view(options, terminal)
        assert not wants_live_view(DemoOptions(rules_dir=BUNDLED_RULES, plain=True), terminal)


def test_without_rich_a_terminal_is_told_how_before_anything_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [name for name in sys.modules if name == "rich" or name.startswith("rich.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.delitem(sys.modules, "streams.demo_view")
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(LiveViewError, match=r"realtime-tagger\[demo\].*--plain"):
        run_demo(DemoOptions(rules_dir=BUNDLED_RULES), load_rules(BUNDLED_RULES), _Terminal())
    assert list(tmp_path.iterdir()) == []  # no folder made, so nothing started
