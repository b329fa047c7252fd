"""The output contract on a real broker: what a worker publishes (the bundled pack over a
simulated shop with second ids, forgets and opt-outs) is valid under ``tagger schema
outputs`` by the stock ``jsonschema`` validator, each record's headers name its kind and
schema version, the consumer of docs/outputs.md keeps the audiences Redis holds, and the
one-line console consumer there prints the records.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord

from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker
from streams.redis_store import RedisStore
from streams.settings import Settings
from streams.topics import ensure_topics, output_topics
from taggers.identity import load_person
from taggers.outputs import OUTPUT_KINDS
from taggers.simulate import SimulationConfig, simulate
from tests.support.contract import CONSUMER, OUTPUTS_PAGE, docs_block, run_block, validator
from tests.support.markdown import shell_commands, shell_lines
from tests.support.stack import pipeline_settings, produce, running_worker, wait_for

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


def holders(store: RedisStore, ids: set[str]) -> dict[str, set[str]]:
    """Each tag's people, as Redis holds them (by any of their ids)."""
    found: dict[str, set[str]] = {}
    people = [person for user in ids if (person := load_person(store, user)) is not None]
    for person in people:
        for tag in person.tags:
            found.setdefault(tag, set()).add(person.user_id)
    return found


def test_the_workers_records_keep_the_contract(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines = list(simulate(SHOP))
    ids = {str(orjson.loads(line)["user_id"]) for line in lines}
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    store = RedisStore(redis_client, prefix=settings.redis_prefix)
    audience = run_block(docs_block(CONSUMER))["audience"]
    topic = settings.tag_changes_topic
    last: dict[str, Any] = {}

    def audiences_agree() -> bool:
        """The consumer over the whole tag-change topic keeps what Redis holds (Redis read
        first: the worker sends outputs before it saves the state they come from)."""
        held = holders(store, ids)
        sent = read_all(settings, [topic])
        tags = {o["tag"] for o in (orjson.loads(r.value) for r in sent) if "tag" in o}
        want = {tag: held.get(tag, set()) for tag in tags | set(held)}
        kept = {tag: audience(sent, tag) for tag in want}
        last.update(want=want, kept=kept)
        return bool(held) and kept == want

    with running_worker(settings, tmp_path):
        produce(settings, lines)
        wait_for(
            lambda: len(read_all(settings, [topic])) > 0 and audiences_agree(),
            600,  # each check reads the whole topic: slow on a loaded machine, not stuck
            "the consumer's audiences to be Redis's",
        )
        records = read_all(settings, list(output_topics(settings).values()))

    assert last["kept"] == last["want"]
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
    assert kinds == {kind.name for kind in OUTPUT_KINDS}, "a kind the worker did not send"


def test_the_one_line_console_consumer_prints_the_records(
    broker: TansuBroker, redis_server: RedisServer, tmp_path: Path
) -> None:
    (line,) = [line for _, line in shell_lines(OUTPUTS_PAGE) if line.startswith("python -c")]
    ((_, _, code),) = shell_commands(line)
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    address = client_options(settings)["bootstrap_servers"]
    code = code.replace("localhost:9092", address).replace(
        '"user-tag-changes"', f'"{settings.tag_changes_topic}"'
    )
    assert settings.tag_changes_topic in code and address in code
    with running_worker(settings, tmp_path):
        produce(settings, list(simulate(SimulationConfig(users=5, days=10, seed=2))))
        console = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        try:
            assert console.stdout is not None
            # The worker starts, decides and sends first: minutes on a loaded machine.
            ready, _, _ = select.select([console.stdout], [], [], 300)
            assert ready, "the console consumer printed nothing in 300 s"
            first = console.stdout.readline().decode()
        finally:
            console.kill()
            console.wait()
            if console.stdout is not None:
                console.stdout.close()
    kind, _, value = first.rstrip("\n").partition(" ")
    record = orjson.loads(value)
    assert kind == record["kind"] == "tag_change"
    assert validator("outputs").is_valid(record)
