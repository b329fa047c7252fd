"""The simulator: a stream that exercises every rule of the default pack, reproducibly."""

from __future__ import annotations

from collections import Counter

import orjson

from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import EventError, decode_event
from taggers.outputs import Alert, Transition
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate

YEAR = SimulationConfig(users=400, days=365, seed=11)


def test_the_stream_is_in_event_time_order_with_mixed_timestamp_forms() -> None:
    events = [decode_event(line) for line in simulate(YEAR)]
    assert [e.ts for e in events] == sorted(e.ts for e in events)
    assert len({e.event_id for e in events}) == len(events)
    forms = Counter(type(orjson.loads(line)["ts"]).__name__ for line in simulate(YEAR))
    assert forms["int"] > 0.05 * len(events)
    assert forms["str"] > 0.8 * len(events)


def test_a_year_of_shoppers_reaches_every_stage_and_alert() -> None:
    outputs = list(Replay(Engine(load_rules(BUNDLED_RULES))).run(simulate(YEAR)))
    stages = {o.to_stage for o in outputs if isinstance(o, Transition)}
    assert stages == {"prospect", "engaged", "new", "active", "loyal", "dormant", "churned"}
    alerts = Counter(o.name for o in outputs if isinstance(o, Alert))
    assert set(alerts) == {
        "churn_risk",
        "first_repurchase_nudge",
        "koc_candidate",
        "coupon_unused",
        "new_member_no_order",
        "sensitive_message",
        "staff_sensitive_message",
        "friend_lost",
        "new_friend_follow_up",
        "holiday_greeting",
        "birthday_soon",
        "win_back",
    }
    assert not [o for o in outputs if isinstance(o, BadLine)]


def test_malformed_lines_come_on_top_of_every_good_event() -> None:
    config = SimulationConfig(users=60, days=90, seed=2, malformed=0.1)
    clean = list(simulate(SimulationConfig(users=60, days=90, seed=2)))
    good, bad = [], Counter[str]()
    for line in simulate(config):
        try:
            decode_event(line)
            good.append(line)
        except EventError as error:
            bad[error.reason] += 1
    assert good == clean
    assert 0.05 * len(clean) < sum(bad.values()) < 0.15 * len(clean)
    assert {"invalid_json", "schema", "too_large", "too_deep"} <= set(bad)
