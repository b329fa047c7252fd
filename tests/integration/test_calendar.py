"""A calendar alert from the worker's deadline sweep: a real broker (tansu), a real Redis and
`tagger run` in a process of its own. The greeted user sends nothing after their order:
other users' events move the partitions' event clock past the holiday, and the sweep
fires the greeting, once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis

from streams.local_stack import RedisServer, TansuBroker
from streams.redis_store import RedisStore
from streams.topics import ensure_topics
from taggers.events import to_epoch_ms
from tests.support.stack import (
    assigned_partitions,
    clock_ticks,
    pipeline_settings,
    produce,
    read_topics,
    running_worker,
    wait_for,
)

pytestmark = pytest.mark.integration

RULES = """\
timezone: Asia/Shanghai
lists:
  holidays: {file: lists/holidays.txt}
aggregates:
  orders: {count: purchase}
alerts:
  holiday_greeting:
    severity: low
    calendar: {dates: holidays, time: "09:00"}
    when: "orders >= 1"
"""


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def test_the_sweep_greets_a_user_with_no_new_event_on_the_holiday(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    (rules / "lists").mkdir(parents=True)
    (rules / "rules.yaml").write_text(RULES, encoding="utf-8")
    (rules / "lists" / "holidays.txt").write_text("2026-02-17 春节\n", encoding="utf-8")
    settings = pipeline_settings(broker, redis_server, rules_dir=rules)
    ensure_topics(settings)
    order = {
        "event_id": "order-1",
        "user_id": "buyer",
        "type": "purchase",
        "ts": "2026-02-10T12:00:00+08:00",
        "props": {"amount": 88},
    }
    store = RedisStore(redis_client, prefix=settings.redis_prefix)
    with running_worker(settings, tmp_path):
        wait_for(lambda: assigned_partitions(settings) == 2 * settings.partitions, 90, "worker")
        produce(settings, [orjson.dumps(order).decode()])
        wait_for(lambda: bool(store.load(["buyer"])), 30, "the order applied")
        holiday = to_epoch_ms("2026-02-17T09:00:00+08:00")
        assert store.load(["buyer"])["buyer"].due == holiday
        produce(settings, clock_ticks(holiday + 3_600_000, settings.partitions))

        def greeted() -> list[dict[str, object]]:
            found = read_topics(settings, want=None, timeout=10)[settings.alerts_topic]
            return [a for a in found if a["name"] == "holiday_greeting"]

        wait_for(lambda: bool(greeted()), 60, "the holiday greeting")
        (alert,) = greeted()
        assert alert["user_id"] == "buyer"
        assert alert["details"] == {"date": "2026-02-17", "name": "春节"}
        assert to_epoch_ms(str(alert["at"])) == holiday
        profile = store.load(["buyer"])["buyer"]
        assert profile.events == 1  # no new event of the buyer's
        assert profile.fired["calendar:holiday_greeting"] == holiday
