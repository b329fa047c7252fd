"""The output contract on a real broker: what a worker publishes (the bundled pack over a
simulated shop with second ids, forgets and opt-outs) is valid under ``tagger schema
outputs`` by the stock ``jsonschema`` validator, each record's headers name its kind and
schema version and its key is the person.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker
from streams.settings import Settings
from streams.topics import ensure_topics, output_topics
from taggers.outputs import OUTPUT_KINDS
from taggers.simulate import SimulationConfig, simulate
from tests.support.contract import validator
from tests.support.stack import all_applied, pipeline_settings, produce, running_worker, wait_for

pytestmark = pytest.mark.integration

SHOP = SimulationConfig(users=40, days=30, seed=8, identities=0.2, forgets=0.1, opt_outs=0.1)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def read_all(settings: Settings, topics: list[str]) -> list[ConsumerRecord]:
    """Every record on these topics now, headers and all, in each partition's order."""
    consumer = KafkaConsumer(**client_options(settings), fetch_max_wait_ms=100)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        found: list[ConsumerRecord] = []
        while any(consumer.position(part) < end for part, end in ends.items()):
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(records)
        return found
    finally:
        consumer.close()


def test_the_workers_records_keep_the_contract(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = list(simulate(SHOP))
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    with running_worker(settings, tmp_path):
        produce(settings, lines)
        topics = list(output_topics(settings).values())
        every_kind = {kind.name for kind in OUTPUT_KINDS}
        found: list[ConsumerRecord] = []

        def all_sent() -> bool:
            # Identity changes run after the events, on the re-keyed topic: wait for their
            # outputs too, not only for the last event of each partition.
            if not all_applied(redis_client, settings, lines):
                return False
            found[:] = read_all(settings, topics)
            return {orjson.loads(record.value)["kind"] for record in found} == every_kind

        wait_for(all_sent, 300, "every event applied and every kind of output sent")
        records = found

    check = validator("outputs")
    kinds: set[str] = set()
    for record in records:
        value = orjson.loads(record.value)
        errors = [error.message for error in check.iter_errors(value)]
        assert not errors, f"{record.topic} {value}: {errors}"
        headers = dict(record.headers)
        assert headers == {
            "tagger-kind": value["kind"].encode(),
            "tagger-schema-version": str(value["schema_version"]).encode(),
        }
        assert record.key == value["person_id"].encode()
        kinds.add(value["kind"])
    assert kinds == every_kind, "a kind the worker did not send"
