"""The streaming worker end to end: a real broker (tansu), a real Redis, `tagger run`.

The same events go through Kafka -> worker -> Redis and through `tagger replay`; profiles
and output events (deduplicated by id) must be identical, through crashes, Redis outages
and floods of bad input.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from redis.cluster import RedisCluster

from streams.cli import main
from streams.kafka_auth import client_options
from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker
from streams.redis_store import Client, RedisStore
from streams.settings import Settings
from streams.topics import TopicLayoutError, ensure_topics, partition_counts
from taggers.bundled import BUNDLED_RULES
from taggers.clock import MAX_FUTURE_SKEW_MS, future_error
from taggers.engine import Engine
from taggers.events import BehaviourEvent, EventError, decode_event
from taggers.outputs import output_to_dict
from taggers.pipeline import UNDECODED, type_label
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from tests.support.stack import (
    PARTITIONS,
    LocalRedisCluster,
    all_applied,
    assigned_partitions,
    clock_ticks,
    event_times,
    get_json,
    get_metrics,
    partition_of,
    pipeline_settings,
    produce,
    read_topics,
    running_worker,
    stop_worker,
    wait_for,
)

pytestmark = pytest.mark.integration
RULES = load_rules(BUNDLED_RULES)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


@dataclass
class Reference:
    """What `tagger replay` makes of a stream: the result the pipeline must reach."""

    stream: list[str | bytes]
    memory: MemoryStore = field(default_factory=MemoryStore)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad: int = 0

    def __post_init__(self) -> None:
        # Sent now, as the test produces it: far-future events are `future` dead letters.
        replay = Replay(Engine(RULES), self.memory, sent_at=int(time.time() * 1000))
        for item in replay.run(self.stream):
            if isinstance(item, BadLine):
                self.bad += 1
            else:
                self.outputs[item.id] = output_to_dict(item)

    @property
    def users(self) -> list[str]:
        return sorted(self.memory.users())


def _decoded(line: str | bytes) -> BehaviourEvent | None:
    """The event the worker applies for a line: None for a dead letter."""
    try:
        event = decode_event(line)
    except EventError:
        return None
    return None if future_error(event, int(time.time() * 1000), MAX_FUTURE_SKEW_MS) else event


def reference_for(lines: list[str | bytes], partitions: int = PARTITIONS) -> Reference:
    good = [line for line in lines if isinstance(line, str)]
    now = int(time.time() * 1000)  # a far-future event is a dead letter, not the end
    end = max(ts for ts in event_times(good) if ts <= now)
    return Reference([*lines, *clock_ticks(end + 1, partitions)])


def snapshot(profile: Profile) -> dict[str, Any]:
    data = profile.to_dict()
    del data["clock"]  # when the last sweep ran is not part of the user's state
    return data


def assert_same_result(
    reference: Reference, settings: Settings, client: Client, worker_log: Path
) -> dict[str, list[dict[str, Any]]]:
    """Wait for every output, then compare outputs (by id), dead letters and profiles."""
    want = len(reference.outputs) + reference.bad
    found = read_topics(settings, want=want, timeout=240, distinct_ids=True)
    outputs = {
        record["id"]: record
        for topic in (settings.tag_changes_topic, settings.transitions_topic, settings.alerts_topic)
        for record in found[topic]
    }
    log = worker_log.read_text(errors="replace")[-3000:]
    assert outputs.keys() == reference.outputs.keys(), log
    assert outputs == reference.outputs
    dead = {(d["partition"], d["offset"]): d for d in found[settings.dlq_topic]}
    assert len(dead) == reference.bad, log

    store = RedisStore(client, prefix=settings.redis_prefix)
    users = reference.users

    def settled() -> bool:
        # Some deadlines change a profile without any output (an expired coupon is
        # dropped), so wait for the last sweeps too, not only for the outputs.
        stored = store.load(users)
        return len(stored) == len(users) and all(
            snapshot(stored[u]) == snapshot(p)
            for u in users
            if (p := reference.memory.get(u)) is not None
        )

    deadline = time.monotonic() + 60
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)  # then the comparison below says what differs, if anything
    stored = store.load(users)
    for user in users:
        want_profile = reference.memory.get(user)
        assert want_profile is not None
        assert snapshot(stored[user]) == snapshot(want_profile), user
    for tag in ("high_value", "rfm_general_value", "source_wecom"):
        assert store.tag_members(tag) == reference.memory.tag_members(tag)
    return found


def test_the_pipeline_equals_the_replay(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = [
        *simulate(SimulationConfig(users=150, days=200, seed=21, malformed=0.02))
    ]
    # A year typed wrong: one event dated 2099 must neither move its partition's clock nor
    # freeze its user's windows: it is a `future` dead letter, in the replay too.
    typo = orjson.loads(next(line for line in lines if '"purchase"' in str(line)))
    typo.update(event_id="typo", ts="2099-05-01T10:00:00Z")
    lines.insert(len(lines) // 2, orjson.dumps(typo).decode())
    reference = reference_for(lines)
    assert reference.bad > 0 and len(reference.outputs) > 1000
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    produce(settings, reference.stream)
    counted: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

    def by_label(name: str, *keys: str) -> Counter[tuple[str, ...]]:
        found: Counter[tuple[str, ...]] = Counter()
        for (sample, labels), value in counted.items():
            if sample == name:
                found[tuple(dict(labels)[key] for key in keys)] += int(value)
        return found

    with running_worker(settings, tmp_path):
        found = assert_same_result(reference, settings, redis_client, tmp_path / "worker.log")
        web = f"http://127.0.0.1:{settings.web_port}"
        views = {user: get_json(f"{web}/profiles/{user}") for user in reference.users[:5]}
        audience = get_json(f"{web}/tags/source_wecom/members?limit=3")
        missing = get_json(f"{web}/profiles/nobody")
        bad_limit = get_json(f"{web}/tags/source_wecom/members?limit=0")
        health, ready = get_json(f"{web}/healthz"), get_json(f"{web}/readyz")

        def reported() -> bool:
            # Lag and populations are reported every few seconds, not per event.
            counted.update(get_metrics(f"{web}/metrics"))
            lags = by_label("tagger_consumer_lag_messages", "topic", "partition")
            stages = by_label("tagger_stage_users", "stage")
            return len(lags) == 2 * PARTITIONS and not any(lags.values()) and stages == want_stages

        want_stages = Counter(
            {(stage,): 0 for stage in RULES.lifecycle.stages} if RULES.lifecycle else {}
        )
        want_stages.update(
            (p.stage,) for u in reference.users if (p := reference.memory.get(u)) and p.stage
        )
        wait_for(reported, 30, "lag and stage gauges to catch up")

    good = [event for line in reference.stream if (event := _decoded(line)) is not None]
    by_type = Counter(type_label(event.type) for event in good)
    events = by_label("tagger_events_total", "type", "outcome")
    assert {t: events[t, "applied"] + events[t, "redelivered"] for t in by_type} == by_type
    assert events[UNDECODED, "dead"] == reference.bad
    assert sum(events.values()) == len(reference.stream)
    assert counted[("tagger_redis_up", ())] == 1
    batches = sum(v for (name, _), v in counted.items() if name == "tagger_batches_total")
    assert counted[("tagger_batch_size_events_count", ())] == batches
    assert counted[("tagger_batch_size_events_sum", ())] == len(reference.stream)
    assert counted[("tagger_event_to_redis_seconds_count", ())] == len(reference.stream)
    # Exported at 0 from the start, so that an alert's increase() sees the first one.
    assert counted[("tagger_rule_reloads_total", (("result", "rejected"),))] == 0
    assert counted[("tagger_timer_sweeps_total", ())] > 0
    assert counted[("tagger_deadlines_fired_total", ())] > 0
    for tag in ("high_value", "source_wecom"):
        size = len(reference.memory.tag_members(tag))
        assert counted[("tagger_audience_users", (("tag", tag),))] == size
    outputs = sum(v for (name, _), v in counted.items() if name == "tagger_outputs_total")
    assert outputs >= len(reference.outputs)  # sent at least once each

    assert health == {"status": "ok"}
    assert ready == {
        "ready": True,
        "partitions": 2 * PARTITIONS,  # the events topic's and the re-keyed topic's
        "rules_version": RULES.version,
        "problems": [],
    }

    dead = found[settings.dlq_topic]
    assert by_label("tagger_dead_letters_total", "reason") == Counter((d["reason"],) for d in dead)
    sent = list(reference.outputs.values())
    # Each output at least once (a redone batch sends its outputs again).
    tag_changes = Counter((o["reason"]["rule"], o["op"]) for o in sent if o["kind"] == "tag_change")
    moves = Counter((o["from"] or "none", o["to"]) for o in sent if o["kind"] == "transition")
    alerts = Counter((o["name"],) for o in sent if o["kind"] == "alert")
    for expected_counts, name, labels in (
        (tag_changes, "tagger_tag_changes_total", ("tag", "op")),
        (moves, "tagger_transitions_total", ("from_stage", "to_stage")),
        (alerts, "tagger_alerts_total", ("name",)),
    ):
        got = by_label(name, *labels)
        assert set(got) == set(expected_counts), name
        assert all(got[key] >= count for key, count in expected_counts.items()), name
    reasons = {"invalid_json", "schema", "too_large", "too_deep", "future"}
    assert {d["reason"] for d in dead} <= reasons
    assert [d["reason"] for d in dead if "2099" in d.get("value", "")] == ["future"]
    assert all(d["topic"] == settings.events_topic for d in dead)
    engine = Engine(RULES)
    for user, view in views.items():
        want = reference.memory.get(user)
        assert want is not None
        expected = engine.describe(want)
        assert (view["stage"], view["tags"]) == (expected["stage"], expected["tags"])
        assert view["aggregates"]["orders"] == expected["aggregates"]["orders"]
    assert audience["members"] == reference.memory.tag_members("source_wecom")[:3]
    assert audience["next"] == audience["members"][-1]
    assert missing == {"error": "no profile for user 'nobody'"}
    assert bad_limit == {"error": "limit must be a whole number from 1"}


def test_tagger_produce_sends_a_file_keyed_by_user(
    broker: TansuBroker,
    redis_server: RedisServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    lines = [*simulate(SimulationConfig(users=40, days=30, seed=9)), "not json"]
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    for name, value in settings.to_environment().items():
        monkeypatch.setenv(name, value)
    assert main(["produce", str(events)]) == 0
    assert capsys.readouterr().out == f"sent {len(lines)} events to {settings.events_topic}\n"

    consumer = KafkaConsumer(**client_options(settings), fetch_max_wait_ms=100)
    parts = [TopicPartition(settings.events_topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    received: list[tuple[int, bytes | None, bytes]] = []
    deadline = time.monotonic() + 30
    while len(received) < len(lines) and time.monotonic() < deadline:
        for part, records in consumer.poll(timeout_ms=500).items():
            received += [(part.partition, r.key, r.value) for r in records]
    consumer.close()
    assert sorted(value.decode() for _, _, value in received) == sorted(lines)
    for partition, key, raw in received:
        if raw == b"not json":
            assert key is None  # sent all the same: the worker dead-letters it
            continue
        assert key == str(orjson.loads(raw)["user_id"]).encode()
        assert partition == partition_of(key)  # a user's events stay on one partition

    # --rate paces the sending (the compose generator's steady feed).
    paced = tmp_path / "paced.jsonl"
    paced.write_text("\n".join(lines[:30]) + "\n", encoding="utf-8")
    started = time.monotonic()
    assert main(["produce", "--rate", "20", str(paced)]) == 0
    assert time.monotonic() - started >= 29 / 20
    assert capsys.readouterr().out == f"sent 30 events to {settings.events_topic}\n"


def test_unkeyed_events_are_rekeyed_by_user_and_applied_in_order(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=100, days=150, seed=4))]
    reference = reference_for(lines)
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    produce(settings, reference.stream, keyed=False)
    with running_worker(settings, tmp_path):
        assert_same_result(reference, settings, redis_client, tmp_path / "worker.log")
    store = RedisStore(redis_client, prefix=settings.redis_prefix)
    # Guarded by their origin (all came unkeyed through input partition 0), not by the
    # copies' offsets on the re-keyed topic: the header went through the broker.
    assert {tuple(store.offsets(user)) for user in reference.users} == {("k0",)}


def writes(client: Client, settings: Settings) -> int:
    """How many profile writes Redis has taken (the sum of the users' versions)."""
    pipe = client.pipeline(transaction=False)
    for key in client.scan_iter(match=f"{settings.redis_prefix}:u:*", count=1000):
        pipe.hget(key, "v")
    return sum(int(v) for v in pipe.execute() if v is not None)


def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=1700, days=240, seed=5))]
    assert len(lines) >= 50_000
    reference = reference_for(lines)
    settings = pipeline_settings(broker, redis_server, batch_size=300)
    ensure_topics(settings)
    produce(settings, reference.stream)
    chance = random.Random(20261127)
    kills = 0
    for _ in range(3):
        worker = start_worker(settings, tmp_path)
        before = writes(redis_client, settings)
        wait_for(
            lambda b=before: (  # type: ignore[misc]
                writes(redis_client, settings) > b
                or all_applied(redis_client, settings, reference.stream)
            ),
            timeout=90,
            what="the worker to make progress",
        )
        time.sleep(chance.uniform(0.5, 4.0))
        worker.kill()  # SIGKILL: no clean shutdown, no final commit
        worker.wait()
        kills += 1
    assert kills == 3
    with running_worker(settings, tmp_path):
        assert_same_result(reference, settings, redis_client, tmp_path / "worker.log")


def test_a_second_worker_joining_mid_run_shares_the_work_and_changes_nothing(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=600, days=200, seed=17))]
    reference = reference_for(lines)
    settings = pipeline_settings(broker, redis_server, batch_size=200)
    ensure_topics(settings)

    joined = threading.Event()
    last_third = 2 * len(reference.stream) // 3

    def trickle() -> None:
        for start in range(0, len(reference.stream), 1000):
            if start >= last_third:
                joined.wait(120)  # on a slow machine the first worker could drain it all
            produce(settings, reference.stream[start : start + 1000])
            time.sleep(0.6)  # events keep coming while the second worker joins

    producer = threading.Thread(target=trickle)
    second = settings.model_copy(update={"web_port": free_port()})
    (tmp_path / "second").mkdir()
    with running_worker(settings, tmp_path):
        producer.start()
        wait_for(lambda: writes(redis_client, settings) > 50, 90, "the first worker to start")
        try:
            with running_worker(second, tmp_path / "second"):
                wait_for(lambda: assigned_partitions(second) > 0, 120, "the second worker to join")
                joined.set()
                # The group rebalances while events flow; both workers then share them.
                assert_same_result(reference, settings, redis_client, tmp_path / "worker.log")
                counted = get_metrics(f"http://127.0.0.1:{second.web_port}/metrics")
        finally:
            joined.set()
            producer.join()
    applied = [
        value
        for (name, labels), value in counted.items()
        if name == "tagger_events_total" and ("outcome", "applied") in labels
    ]
    assert sum(applied) > 0


def test_three_workers_over_eight_partitions_share_the_work_and_survive_a_kill_9(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=900, days=200, seed=31))]
    reference = reference_for(lines, partitions=8)
    settings = pipeline_settings(broker, redis_server, partitions=8, batch_size=200)
    ensure_topics(settings)
    group = [settings.model_copy(update={"web_port": free_port()}) for _ in range(3)]
    workers = []
    for number, member in enumerate(group):
        (tmp_path / str(number)).mkdir()
        workers.append(start_worker(member, tmp_path / str(number)))

    def shares() -> list[int]:
        return [assigned_partitions(member) for member in group]

    try:
        # Both input topics' 8 partitions, split three ways, before any event is sent.
        wait_for(lambda: all(shares()) and sum(shares()) == 16, 120, "the group to settle")
        producer = threading.Thread(target=produce, args=(settings, reference.stream))
        producer.start()
        wait_for(lambda: writes(redis_client, settings) > 2000, 90, "the workers to get going")
        workers[0].kill()  # SIGKILL, mid-run: its partitions go to the other two
        workers[0].wait()
        producer.join()
        assert_same_result(reference, settings, redis_client, tmp_path / "1" / "worker.log")
        wait_for(lambda: shares()[1:] != [0, 0] and sum(shares()[1:]) == 16, 60, "a takeover")
        applied = [
            sum(
                value
                for (name, labels), value in get_metrics(
                    f"http://127.0.0.1:{member.web_port}/metrics"
                ).items()
                if name == "tagger_events_total" and ("outcome", "applied") in labels
            )
            for member in group[1:]
        ]
    finally:
        for worker in workers:
            stop_worker(worker)
    assert all(count > 0 for count in applied), applied  # both survivors did work


def test_rekeyed_events_through_repeated_kill_9_of_three_workers_equal_the_replay(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Every event arrives unkeyed, so every one is re-sent keyed by user id. A worker
    # killed after re-sending copies but before committing their originals' offsets makes
    # its successor send them again, under new offsets of the re-keyed topic: only their
    # origin tells them apart from new events.
    # Few users with long histories: many events of one user fall between an original
    # and a copy sent again, more than the engine's recent event ids remember.
    lines: list[str | bytes] = [
        *simulate(SimulationConfig(users=120, days=1000, seed=23, malformed=0.01))
    ]
    assert len(lines) >= 15_000
    reference = reference_for(lines, partitions=8)
    # A short session: a killed worker's partitions move on sooner (not so short that
    # a loaded machine makes live workers miss their heartbeats).
    settings = pipeline_settings(
        broker, redis_server, partitions=8, batch_size=300, session_timeout=6
    )
    ensure_topics(settings)
    group = [settings.model_copy(update={"web_port": free_port()}) for _ in range(3)]
    for number in range(len(group)):
        (tmp_path / str(number)).mkdir()
    workers = [start_worker(member, tmp_path / str(number)) for number, member in enumerate(group)]
    chance = random.Random(20261201)
    try:
        producer = threading.Thread(
            target=produce, args=(settings, reference.stream), kwargs={"keyed": False}
        )
        producer.start()
        store = RedisStore(redis_client, prefix=settings.redis_prefix)
        ticks = [str(orjson.loads(tick)["user_id"]) for tick in reference.stream[len(lines) :]]

        def progress(before: int) -> bool:
            # The clock ticks come last: once they are applied, so is everything.
            return writes(redis_client, settings) > before + 500 or len(store.load(ticks)) == len(
                ticks
            )

        # Rounds of kill -9: all three at once (the one re-keying partition 0 is among
        # them), one (the others take its partitions over), all three again.
        for victims in ([0, 1, 2], [chance.randrange(3)], [0, 1, 2]):
            before = writes(redis_client, settings)
            wait_for(
                lambda b=before: progress(b),  # type: ignore[misc]
                timeout=120,
                what="the workers to make progress",
            )
            time.sleep(chance.uniform(0.2, 2.0))
            for number in victims:
                workers[number].kill()  # SIGKILL: no clean shutdown, no final commit
                workers[number].wait()
                workers[number] = start_worker(group[number], tmp_path / str(number))
        producer.join()
        found = assert_same_result(reference, settings, redis_client, tmp_path / "0" / "worker.log")
    finally:
        for worker in workers:
            worker.kill()  # as the test does anyway: a clean stop only takes longer
            worker.wait()
    # The kills made outputs go out again (the same ids): the crashes did hit mid-work.
    assert sum(len(records) for records in found.values()) > len(reference.outputs)


def test_the_pipeline_on_a_redis_cluster_equals_the_replay(
    broker: TansuBroker,
    redis_cluster: LocalRedisCluster,
    cluster_client: RedisCluster,
    tmp_path: Path,
) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=150, days=200, seed=22))]
    reference = reference_for(lines)
    settings = pipeline_settings(broker, redis_cluster, redis_cluster=True)
    ensure_topics(settings)
    produce(settings, reference.stream)
    with running_worker(settings, tmp_path):
        assert_same_result(reference, settings, cluster_client, tmp_path / "worker.log")
        ready = get_json(f"http://127.0.0.1:{settings.web_port}/readyz")
    assert ready["ready"], ready
    # The profiles are spread over the three nodes, not all on one.
    nodes = cluster_client.get_primaries()  # type: ignore[no-untyped-call]
    keys = [cluster_client.dbsize(target_nodes=node) for node in nodes]
    assert len(keys) == 3 and all(keys), keys


def test_a_redis_cluster_node_going_down_loses_nothing(broker: TansuBroker, tmp_path: Path) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=300, days=200, seed=23))]
    reference = reference_for(lines)
    with LocalRedisCluster(3, persistent=True) as cluster:
        client = RedisCluster.from_url(cluster.url, socket_timeout=None)
        settings = pipeline_settings(broker, cluster, redis_cluster=True, batch_size=100)
        ensure_topics(settings)
        produce(settings, reference.stream)
        try:
            with running_worker(settings, tmp_path) as worker:
                wait_for(lambda: writes(client, settings) > 20, 90, "progress")
                cluster.servers[1].stop()  # a third of the slots gone, no replica to promote
                time.sleep(4)  # the worker keeps retrying meanwhile
                assert worker.poll() is None, "the worker must survive a node going down"
                status = get_json(f"http://127.0.0.1:{settings.web_port}/readyz")
                assert not status["ready"], status
                cluster.servers[1].start()
                cluster.wait_ready()
                assert_same_result(reference, settings, client, tmp_path / "worker.log")
        finally:
            client.close()
    assert "redis unreachable, retrying" in (tmp_path / "worker.log").read_text(errors="replace")


def test_redis_auth_comes_from_the_environment_and_no_secret_is_logged_or_exported(
    broker: TansuBroker, tmp_path: Path
) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=40, days=120, seed=6))]
    reference = reference_for(lines)
    with RedisServer(password=secret) as server:
        settings = pipeline_settings(broker, server, redis_password=secret)
        ensure_topics(settings)
        produce(settings, reference.stream)
        client = redis.Redis.from_url(server.url, password=secret, socket_timeout=None)
        try:
            worker = start_worker(settings, tmp_path, loglevel="info")
            try:
                assert_same_result(reference, settings, client, tmp_path / "worker.log")
                web = f"http://127.0.0.1:{settings.web_port}"
                with urllib.request.urlopen(f"{web}/metrics", timeout=10) as response:
                    exported = response.read().decode()
                status = get_json(f"{web}/readyz")
            finally:
                stop_worker(worker)
        finally:
            client.close()
        # Without the password, the worker says which setting to look at and stops.
        refused = subprocess.run(
            [sys.executable, "-m", "streams.cli", "run"],
            env=os.environ | settings.model_copy(update={"redis_password": None}).to_environment(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert status["ready"], status
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "tagger_events_total" in exported and len(log) > 0
    assert secret not in log and secret not in exported
    assert refused.returncode == 1
    assert "cannot use Redis" in refused.stderr and secret not in refused.stderr


def test_a_redis_outage_loses_nothing(broker: TansuBroker, tmp_path: Path) -> None:
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=400, days=200, seed=8))]
    reference = reference_for(lines)
    with RedisServer(persistent=True) as server:
        client = redis.Redis.from_url(server.url, socket_timeout=None)
        settings = pipeline_settings(broker, server, batch_size=200)
        ensure_topics(settings)
        produce(settings, reference.stream)
        try:
            with running_worker(settings, tmp_path) as worker:
                wait_for(lambda: writes(client, settings) > 20, 90, "progress")
                server.stop()
                time.sleep(4)  # the worker keeps retrying meanwhile
                assert worker.poll() is None, "the worker must survive a Redis outage"
                web = f"http://127.0.0.1:{settings.web_port}"
                assert get_json(f"{web}/profiles/{reference.users[0]}") == {
                    "error": "Redis is unreachable, try again"
                }
                unready = get_json(f"{web}/readyz")
                assert not unready["ready"] and unready["problems"] == ["Redis unreachable"]
                server.start()
                assert_same_result(reference, settings, client, tmp_path / "worker.log")
                counted = get_metrics(f"http://127.0.0.1:{settings.web_port}/metrics")
        finally:
            client.close()
    log = (tmp_path / "worker.log").read_text(errors="replace")
    assert "redis unreachable, retrying" in log
    errors = [v for (name, _), v in counted.items() if name == "tagger_redis_errors_total"]
    assert sum(errors) >= 1
    assert counted[("tagger_redis_up", ())] == 1


def test_group_churn_with_a_paused_worker_and_a_frozen_redis_stops_no_worker(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """One worker paused past its session timeout while Redis is frozen for 12 s, twice,
    with a backlog: the other is rebalanced with fetches waiting for its busy agent (the
    rebalance clears the agent's queue under a waiting hand-over, which used to stop the
    worker for good), and the paused one comes back to commits refused with
    UnknownMemberId. Both must ride it out and reach the replay's result."""
    lines: list[str | bytes] = [*simulate(SimulationConfig(users=800, days=200, seed=23))]
    reference = reference_for(lines)
    first = pipeline_settings(broker, redis_server, batch_size=100)
    second = first.model_copy(update={"web_port": free_port()})
    ensure_topics(first)
    produce(first, reference.stream)  # a backlog: fetches queue up behind a frozen Redis
    (tmp_path / "second").mkdir()
    logs = (tmp_path / "worker.log", tmp_path / "second" / "worker.log")
    with (
        running_worker(first, tmp_path) as paused,
        running_worker(second, tmp_path / "second") as other,
    ):
        try:
            wait_for(
                lambda: assigned_partitions(first) > 0 and assigned_partitions(second) > 0,
                120,
                "both workers to hold partitions",
            )
            for _ in range(2):
                os.kill(paused.pid, signal.SIGSTOP)
                redis_client.client_pause(12_000, all=True)
                time.sleep(first.session_timeout + 5)  # the group gives up on it
                os.kill(paused.pid, signal.SIGCONT)
                time.sleep(first.session_timeout)  # it finds out, rejoins, commits fail
                assert paused.poll() is None and other.poll() is None, logs
            wait_for(
                lambda: assigned_partitions(first) > 0 and assigned_partitions(second) > 0,
                120,
                "both workers to hold partitions again",
            )
            assert_same_result(reference, first, redis_client, tmp_path / "worker.log")
            assert paused.poll() is None and other.poll() is None
        finally:
            os.kill(paused.pid, signal.SIGCONT)
    for log in logs:
        text = log.read_text(errors="replace")
        assert "Crashed reason" not in text, text[-3000:]


def fuzzed(rng: random.Random, good: list[str]) -> bytes:
    """A bad message of a kind producers really send, or random bytes."""
    kind = rng.randrange(7)
    sample = orjson.loads(rng.choice(good))
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))
    if kind == 1:
        text = orjson.dumps(sample)
        return text[: rng.randrange(1, len(text))]
    if kind == 2:
        del sample["user_id"]
    elif kind == 3:
        sample["ts"] = rng.choice(["yesterday", None, True, 12, "2026-01-01"])
    elif kind == 4:
        sample["props"] = {"text": "x" * 70_000}
    elif kind == 5:
        sample["user_id"] = rng.choice([None, 7, [], {}, ""])
    else:
        sample["type"] = "purchase"
        sample["props"] = {"amount": rng.choice(["1e999", -5, "lots", None])}
    return orjson.dumps(sample)


def test_floods_of_bad_input_go_to_the_dlq_and_good_events_are_all_applied(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    good = [*simulate(SimulationConfig(users=200, days=120, seed=13))]
    rng = random.Random(7)
    lines: list[str | bytes] = []
    for line in good:
        lines.append(line)
        while rng.random() < 0.5:
            lines.append(fuzzed(rng, good))
    bad_count = len(lines) - len(good)
    assert bad_count >= 3000
    reference = reference_for(lines)
    assert reference.bad == bad_count
    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    produce(settings, reference.stream)
    with running_worker(settings, tmp_path) as worker:
        found = assert_same_result(reference, settings, redis_client, tmp_path / "worker.log")
        assert worker.poll() is None, "bad input must never stop the worker"
    reasons = {d["reason"] for d in found[settings.dlq_topic]}
    assert reasons == {"not_utf8", "invalid_json", "schema", "too_large"}
    binary = [d for d in found[settings.dlq_topic] if "value_base64" in d]
    assert binary, "bytes that are not UTF-8 are kept as base64"


def test_the_rekeyed_topic_follows_the_events_topic_and_a_mismatch_is_refused(
    broker: TansuBroker, redis_server: RedisServer
) -> None:
    settings = pipeline_settings(broker, redis_server)
    admin = KafkaAdminClient(**client_options(settings))
    try:
        admin.create_topics([NewTopic(settings.events_topic, 3, replication_factor=1)])
        ensure_topics(settings)  # TAGGER_PARTITIONS is 4: the events topic's 3 win
        names = [settings.events_topic, settings.rekeyed_topic, settings.alerts_topic]
        assert partition_counts(admin, names) == dict(zip(names, [3, 3, 4], strict=True))

        other = pipeline_settings(broker, redis_server)
        admin.create_topics([NewTopic(other.events_topic, 2, replication_factor=1)])
        admin.create_topics([NewTopic(other.rekeyed_topic, 5, replication_factor=1)])
        with pytest.raises(TopicLayoutError, match=f"{other.events_topic} has 2 partitions"):
            ensure_topics(other)
    finally:
        admin.close()


def test_wall_clock_timers_wait_for_the_events_queued_before_their_due_time(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A coupon's reminder comes due while the coupon_redeemed that closes it waits in the
    consumer lag (the worker paused): the reminder must not fire on the stale state. The
    same partition's other coupon, never redeemed, is reminded once the worker catches up:
    caught up, timers follow the wall clock."""
    settings = pipeline_settings(
        broker, redis_server, clock="wall", sweep_interval=0.2, session_timeout=30
    )
    ensure_topics(settings)
    users = [u for n in range(100) if partition_of((u := f"coupon-{n}").encode()) == 0][:2]
    redeems, forgets = users
    remind_in = 8000  # ms from issue to reminder: the pause falls in between
    store = RedisStore(redis_client, prefix=settings.redis_prefix)

    def event(user: str, kind: str, at: int, **props: Any) -> str:
        body = {"event_id": f"{user}-{kind}", "user_id": user, "type": kind}
        return orjson.dumps({**body, "ts": at, "props": props}).decode()

    def reminded() -> set[str]:
        found = read_topics(settings, want=None, timeout=30)[settings.alerts_topic]
        return {a["user_id"] for a in found if a["name"] == "coupon_unused"}

    with running_worker(settings, tmp_path) as worker:
        wait_for(lambda: assigned_partitions(settings) == 2 * PARTITIONS, 90, "the worker")
        issued_at = int(time.time() * 1000)
        due = issued_at + remind_in
        expires = due + 2 * 86_400_000  # coupon_unused reminds 2 days before expiry
        produce(
            settings,
            [
                event(u, "coupon_issued", issued_at, coupon_id="c1", expires_at=expires)
                for u in users
            ],
        )
        wait_for(lambda: len(store.load(users)) == 2, 30, "the coupons applied")
        assert time.time() * 1000 < due - 2000, "too slow to test: the reminder is nearly due"
        worker.send_signal(signal.SIGSTOP)  # the lag: what comes now waits on the topic
        try:
            produce(settings, [event(redeems, "coupon_redeemed", issued_at, coupon_id="c1")])
            assert time.time() * 1000 < due, "too slow to test: redeemed after the reminder"
            wait_for(lambda: time.time() * 1000 > due + 500, 30, "the reminder to be due")
        finally:
            worker.send_signal(signal.SIGCONT)
        wait_for(lambda: forgets in reminded(), 60, "the unredeemed coupon's reminder")
        assert reminded() == {forgets}
        profile = store.load([redeems])[redeems]
        assert "open_coupons" not in profile.aggs and profile.events == 2
