"""``tagger forget ID`` on a real broker: one ``forget`` event for the id, keyed by it, on
the events topic, where the worker reads its input."""

from __future__ import annotations

import time
from collections.abc import Iterator

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.cli import main
from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker
from streams.settings import Settings
from streams.topics import ensure_topics
from taggers.events import FORGET, decode_event
from tests.support.stack import PARTITIONS, partition_of, pipeline_settings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def events_on_topic(settings: Settings) -> list[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) of every record on the events topic (sent and acked)."""
    consumer = KafkaConsumer(**client_options(settings), fetch_max_wait_ms=100)
    parts = [TopicPartition(settings.events_topic, p) for p in range(PARTITIONS)]
    received: list[tuple[int, bytes | None, bytes]] = []
    try:
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        want = sum(consumer.end_offsets(parts).values())
        deadline = time.monotonic() + 30
        while len(received) < want and time.monotonic() < deadline:
            for part, records in consumer.poll(timeout_ms=500).items():
                received += [(part.partition, r.key, r.value) for r in records]
    finally:
        consumer.close()
    return received


def test_tagger_forget_sends_one_forget_event_keyed_by_the_id(
    broker: TansuBroker,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    for name, setting in settings.to_environment().items():
        monkeypatch.setenv(name, setting)
    assert main(["forget", "wecom:wmXyz", "--at", "2026-03-01T10:00:00+08:00"]) == 0
    assert main(["forget", "a}b"]) == 2  # refused: nothing sent
    before = int(time.time() * 1000)
    assert main(["forget", "member:8812"]) == 0
    out = capsys.readouterr().out
    assert out == (
        f"sent a forget event for wecom:wmXyz to {settings.events_topic}\n"
        f"sent a forget event for member:8812 to {settings.events_topic}\n"
    )

    received = events_on_topic(settings)
    assert len(received) == 2  # and the topic holds no other
    by_user = {}
    for partition, key, value in received:
        event = decode_event(value)  # a valid event, as the worker decodes it
        assert key == event.user_id.encode()
        assert partition == partition_of(key)  # with the person's other events
        assert event.type == FORGET and event.props == {} and event.channel is None
        assert set(orjson.loads(value)) == {"event_id", "user_id", "type", "ts"}
        by_user[event.user_id] = event
    assert set(by_user) == {"wecom:wmXyz", "member:8812"}
    assert by_user["wecom:wmXyz"].ts == 1_772_330_400_000
    assert before <= by_user["member:8812"].ts <= int(time.time() * 1000)
    assert by_user["wecom:wmXyz"].event_id != by_user["member:8812"].event_id
