"""Helpers for the pipeline's integration tests: settings, producing, reading topics, workers.

The engine's test helpers are in ``tests.support.core``; these need Kafka and a worker process.
"""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import redis
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
from prometheus_client.parser import text_string_to_metric_families

from streams.kafka_auth import client_options
from streams.local_stack import (
    RedisServer,
    TansuBroker,
    free_port,
    start_worker,
    stop_process,
)
from streams.produce import produce_lines
from streams.redis_store import Client, RedisStore
from streams.settings import Settings
from streams.topics import output_topics
from taggers.events import EventError, decode_event
from taggers.outputs import OUTPUT_KINDS

PARTITIONS = 4


def partition_of(key: bytes, partitions: int = PARTITIONS) -> int:
    """Kafka's default partitioner (murmur2 of the key)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def clock_ticks(ts: int, partitions: int = PARTITIONS) -> list[str]:
    """Two users' events per partition at ``ts``: in event time, every partition's clock
    reaches it (it moves when a second user's events do)."""
    ticks: dict[int, list[str]] = {}
    n = 0
    while len(ticks) < partitions or any(len(users) < 2 for users in ticks.values()):
        user = f"clock-{n}"
        users = ticks.setdefault(partition_of(user.encode(), partitions), [])
        if len(users) < 2:
            users.append(user)
        n += 1
    return [
        orjson.dumps(
            {"event_id": f"tick-{u}", "user_id": u, "type": "clock_tick", "ts": ts}
        ).decode()
        for _, users in sorted(ticks.items())
        for u in users
    ]


def event_times(lines: list[str]) -> Iterator[int]:
    for line in lines:
        try:
            yield decode_event(line).ts
        except EventError:
            continue


def pipeline_settings(
    broker: TansuBroker, redis_server: RedisServer | LocalRedisCluster, **overrides: Any
) -> Settings:
    name = uuid.uuid4().hex[:8]
    outputs = {
        kind.topic_setting: f"{kind.name}-{name}"
        for kind in OUTPUT_KINDS
        if kind.topic_setting is not None  # not a kind sent to every output topic
    }
    return Settings(
        app_id=f"tagger-{name}",
        broker_url=broker.url,
        redis_url=redis_server.url,
        events_topic=f"events-{name}",
        dlq_topic=f"dlq-{name}",
        rekeyed_topic=f"rekeyed-{name}",
        partitions=PARTITIONS,
        fetch_max_wait_ms=100,
        session_timeout=10,
        clock="event",
        sweep_interval=0.2,
        stats_interval=1.0,
        batch_size=500,
        web_port=free_port(),
        web_bind="127.0.0.1",
    ).model_copy(update={**outputs, **overrides})


def produce(
    settings: Settings, lines: list[str] | list[str | bytes], *, keyed: bool = True
) -> None:
    """Send lines to the events topic, keyed by user id where there is one; with
    ``keyed=False``, all unkeyed into partition 0 (in order), as a careless producer would."""
    produce_lines(settings, lines, partition=None if keyed else 0)


def read_topics(
    settings: Settings, want: int | None, timeout: float, *, distinct_ids: bool = False
) -> dict[str, list[dict[str, Any]]]:
    """Every record of the output topics and the DLQ, once ``want`` of them have arrived
    (``None``: every record on them when called).

    With ``distinct_ids`` duplicates (same output id, or same DLQ source offset) count once,
    as after a crash the same outputs are sent again.
    """
    topics = [*output_topics(settings).values(), settings.dlq_topic]
    consumer = KafkaConsumer(**client_options(settings), fetch_max_wait_ms=100)
    found: dict[str, list[dict[str, Any]]] = {topic: [] for topic in topics}
    seen: set[object] = set()
    try:
        parts = [TopicPartition(t, p) for t in topics for p in range(settings.partitions)]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for part, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    data = orjson.loads(record.value)
                    found[part.topic].append(data)
                    seen.add(data.get("id") or (data.get("partition"), data.get("offset")))
            count = len(seen) if distinct_ids else sum(len(v) for v in found.values())
            if want is None:
                if all(consumer.position(part) >= end for part, end in ends.items()):
                    break
            elif count >= want:
                break
    finally:
        consumer.close()
    return found


def all_applied(client: Client, settings: Settings, stream: list[str | bytes]) -> bool:
    """Whether the last event of every partition is applied (then all before it are):
    ``stream`` is what ``produce`` sent, keyed."""
    last: dict[int, tuple[str, int]] = {}
    counts: dict[int, int] = {}
    for line in stream:
        user = str(orjson.loads(line)["user_id"])
        partition = partition_of(user.encode(), settings.partitions)
        counts[partition] = counts.get(partition, 0) + 1
        last[partition] = (user, counts[partition] - 1)
    store = RedisStore(client, prefix=settings.redis_prefix)
    return all(store.offsets(user).get(str(p), -1) >= offset for p, (user, offset) in last.items())


def get_json(url: str) -> Any:
    """GET a JSON document, whatever the status (404 bodies are JSON too)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        body = orjson.loads(error.read())
        error.close()
        return body


def assigned_partitions(settings: Settings) -> int:
    """Input partitions the worker on these settings holds (its /readyz; 0 while it is
    not up yet)."""
    try:
        partitions: int = get_json(f"http://127.0.0.1:{settings.web_port}/readyz")["partitions"]
    except OSError:
        return 0
    return partitions


def get_metrics(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET a Prometheus text page: (sample name, sorted labels) -> value."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Stop a worker politely (it commits and leaves its group), or kill it."""
    stop_process(worker, timeout=30)


@contextmanager
def running_worker(settings: Settings, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``tagger run`` for the duration of a ``with`` block, logging to ``folder/worker.log``."""
    worker = start_worker(settings, folder)
    try:
        yield worker
    finally:
        stop_worker(worker)


class LocalRedisCluster:
    """A Redis Cluster of ``nodes`` primaries (no replicas) on loopback, created with
    ``redis-cli --cluster create`` as an operator would; ``url`` names one node."""

    def __init__(self, nodes: int = 3, *, persistent: bool = False) -> None:
        self.servers = [RedisServer(cluster=True, persistent=persistent) for _ in range(nodes)]
        self.url = self.servers[0].url

    def __enter__(self) -> LocalRedisCluster:
        try:
            for server in self.servers:
                server.start()
            addresses = [f"127.0.0.1:{server.port}" for server in self.servers]
            subprocess.run(
                ["redis-cli", "--cluster", "create", *addresses, "--cluster-yes"],
                check=True,
                capture_output=True,
                timeout=60,
            )
            self.wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def wait_ready(self) -> None:
        """Wait until every node says the cluster is ok (after a node came back, say)."""
        wait_for(self._ready, 60, "the Redis Cluster to be ready")

    def _ready(self) -> bool:
        for server in self.servers:
            try:
                with redis.Redis(port=server.port, socket_connect_timeout=1) as client:
                    if client.cluster("info").get("cluster_state") != "ok":
                        return False
            except redis.ConnectionError:
                return False
        return True

    def __exit__(self, *exc: object) -> None:
        for server in self.servers:
            server.close()
