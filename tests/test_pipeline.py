"""The streaming worker end to end: a real broker (tansu), a real Redis, `tagger run`.

The same events go through Kafka -> worker -> Redis and through `tagger replay`; profiles
and output events must be identical.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.partitioner.default import murmur2

from streams.local_stack import RedisServer, TansuBroker, free_port
from streams.topics import bootstrap, ensure_topics
from taggers.engine import Engine
from taggers.events import EventError, decode_event
from taggers.outputs import output_to_dict
from taggers.profile import Profile
from taggers.redis_store import RedisStore
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.settings import BUNDLED_RULES, Settings
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore

pytestmark = pytest.mark.integration
PARTITIONS = 4
RULES = load_rules(BUNDLED_RULES)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def partition_of(key: bytes) -> int:
    """Kafka's default partitioner (murmur2 of the key)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % PARTITIONS


def clock_ticks(ts: int) -> list[str]:
    """One event per partition at ``ts``: in event time, every partition's clock reaches it."""
    ticks: dict[int, str] = {}
    n = 0
    while len(ticks) < PARTITIONS:
        user = f"clock-{n}"
        ticks.setdefault(partition_of(user.encode()), user)
        n += 1
    return [
        orjson.dumps(
            {"event_id": f"tick-{p}", "user_id": u, "type": "clock_tick", "ts": ts}
        ).decode()
        for p, u in sorted(ticks.items())
    ]


def event_times(lines: list[str]) -> Iterator[int]:
    for line in lines:
        try:
            yield decode_event(line).ts
        except EventError:
            continue


def settings_for(broker: TansuBroker, redis_server: RedisServer) -> Settings:
    name = uuid.uuid4().hex[:8]
    return Settings(
        app_id=f"tagger-{name}",
        broker_url=broker.url,
        redis_url=redis_server.url,
        events_topic=f"events-{name}",
        tag_changes_topic=f"tags-{name}",
        transitions_topic=f"transitions-{name}",
        alerts_topic=f"alerts-{name}",
        dlq_topic=f"dlq-{name}",
        partitions=PARTITIONS,
        fetch_max_wait_ms=100,
        session_timeout=10,
        clock="event",
        sweep_interval=0.2,
        batch_size=500,
        web_port=free_port(),
        web_bind="127.0.0.1",
    )


def environment(settings: Settings) -> dict[str, str]:
    values = settings.model_dump(exclude_none=True)
    return os.environ | {f"TAGGER_{k.upper()}": str(v) for k, v in values.items()}


def produce(settings: Settings, lines: list[str]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap(settings), acks="all", linger_ms=5)
    try:
        for line in lines:
            try:
                key = str(orjson.loads(line)["user_id"]).encode()
            except (orjson.JSONDecodeError, KeyError, TypeError):
                key = b"malformed"
            producer.send(
                settings.events_topic,
                key=key,
                value=line.encode(),
                partition=partition_of(key),
            )
        producer.flush()
    finally:
        producer.close()


def read_topics(settings: Settings, want: int, timeout: float) -> dict[str, list[dict[str, Any]]]:
    """Every record of the output topics and the DLQ, once ``want`` of them have arrived."""
    topics = [
        settings.tag_changes_topic,
        settings.transitions_topic,
        settings.alerts_topic,
        settings.dlq_topic,
    ]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap(settings), fetch_max_wait_ms=100)
    found: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for part, records in consumer.poll(timeout_ms=500).items():
                found[part.topic].extend(orjson.loads(r.value) for r in records)
            if sum(len(v) for v in found.values()) >= want:
                break
    finally:
        consumer.close()
    return found


def get_json(url: str) -> Any:
    """GET a JSON document, whatever the status (404 bodies are JSON too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        body = orjson.loads(error.read())
        error.close()
        return body


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def snapshot(profile: Profile) -> dict[str, Any]:
    data = profile.to_dict()
    del data["clock"]  # when the last sweep ran is not part of the user's state
    return data


def test_the_pipeline_equals_the_replay(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines = list(simulate(SimulationConfig(users=150, days=200, seed=21, malformed=0.02)))
    stream = lines + clock_ticks(max(event_times(lines)) + 1)

    memory = MemoryStore()
    expected_outputs: dict[str, dict[str, Any]] = {}
    bad = 0
    for item in Replay(Engine(RULES), memory).run(stream):
        if isinstance(item, BadLine):
            bad += 1
        else:
            expected_outputs[item.id] = output_to_dict(item)
    assert bad > 0 and len(expected_outputs) > 1000

    settings = settings_for(broker, redis_server)
    ensure_topics(settings)
    produce(settings, stream)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "taggers.cli", "run", "--loglevel", "warning"],
        env=environment(settings),
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        found = read_topics(settings, want=len(expected_outputs) + bad, timeout=150)
        store = RedisStore(redis_client, prefix=settings.redis_prefix)
        users = sorted(memory.users())
        wait_for(
            lambda: len(store.load(users)) == len(users), timeout=30, what="every user in Redis"
        )
        web = f"http://127.0.0.1:{settings.web_port}"
        views = {user: get_json(f"{web}/profiles/{user}") for user in users[:5]}
        audience = get_json(f"{web}/tags/source_wecom/members?limit=3")
        missing = get_json(f"{web}/profiles/nobody")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        log.close()
    worker_log = (tmp_path / "worker.log").read_text(errors="replace")

    outputs = {
        record["id"]: record
        for topic in (settings.tag_changes_topic, settings.transitions_topic, settings.alerts_topic)
        for record in found[topic]
    }
    assert outputs.keys() == expected_outputs.keys(), worker_log[-3000:]
    assert outputs == expected_outputs
    dead = found[settings.dlq_topic]
    assert len(dead) == bad
    assert {d["reason"] for d in dead} <= {"invalid_json", "schema", "too_large", "too_deep"}
    assert all(d["topic"] == settings.events_topic and "offset" in d for d in dead)

    stored = store.load(users)
    for user in users:
        want = memory.get(user)
        assert want is not None
        assert snapshot(stored[user]) == snapshot(want), user
    for tag in ("high_value", "rfm_general_value", "source_wecom"):
        assert store.tag_members(tag) == memory.tag_members(tag)

    engine = Engine(RULES)
    for user, view in views.items():
        want = memory.get(user)
        assert want is not None
        expected = engine.describe(want)
        assert (view["stage"], view["tags"]) == (expected["stage"], expected["tags"])
        assert view["aggregates"]["orders"] == expected["aggregates"]["orders"]
    assert audience["members"] == memory.tag_members("source_wecom")[:3]
    assert audience["next"] == audience["members"][-1]
    assert missing == {"error": "no profile for user 'nobody'"}
