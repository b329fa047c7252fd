"""Every input source is complete: a setting names its topic, its watermarks are its own,
and the worker consumes it, guards it, reports its lag and readiness, and names it in
dead letters. Add a source to ``taggers.sources.INPUT_SOURCES`` and these tell you what
it still lacks."""

from __future__ import annotations

import asyncio
import string
from collections.abc import Iterator

import orjson
import pytest
from faust.types import TP
from prometheus_client import REGISTRY

from streams.app import TaggerApp, new_app
from streams.progress import Progress
from streams.settings import Settings
from streams.topics import input_topics, topic_names
from streams.worker.gauges import LagGauge
from streams.worker.routing import Topics
from streams.worker.views import readiness
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES
from taggers.pipeline import DeadLetter, Pipeline, Record
from taggers.ruleset import load_rules
from taggers.sources import COPY_NAMESPACE, INPUT_SOURCES, InputSource, Origin
from taggers.store import MemoryStore
from tests.support.core import make_event
from tests.support.worker import FakeGroup

SETTINGS = Settings()
SOURCES = pytest.mark.parametrize("source", INPUT_SOURCES, ids=lambda s: s.role)


@pytest.fixture(scope="module")
def topics() -> Topics:
    """The worker's topics (a source without its setting fails here, and in the first test)."""
    return Topics.from_settings(SETTINGS)


@pytest.fixture(scope="module")
def app(topics: Topics) -> Iterator[TaggerApp]:
    """The worker's Faust app as ``create_app`` starts it (not connected to anything)."""
    yield new_app(SETTINGS, topics)


@SOURCES
def test_a_setting_names_the_sources_topic(source: InputSource) -> None:
    field = Settings.model_fields.get(source.topic_setting)
    assert field is not None, f"no Settings.{source.topic_setting} for {source.role}"
    assert isinstance(field.default, str) and field.default
    assert source.topic_setting.endswith("_topic")
    assert topic_names(SETTINGS).count(getattr(SETTINGS, source.topic_setting)) == 1  # created


def test_sources_have_distinct_roles_topics_and_watermark_namespaces(topics: Topics) -> None:
    roles = [source.role for source in INPUT_SOURCES]
    assert len(set(roles)) == len(roles)
    names = list(input_topics(SETTINGS).values())
    assert len(set(names)) == len(names) == len(INPUT_SOURCES)
    assert not set(names) & {*topics.outputs.values(), topics.dlq}
    namespaces = [source.namespace for source in INPUT_SOURCES] + [COPY_NAMESPACE]
    assert len(set(namespaces)) == len(namespaces), namespaces
    # A watermark is its namespace and a partition: no digit in a namespace, or "r1"
    # and partition 2 would read as another namespace's partition 12.
    assert not any(set(namespace) & set(string.digits) for namespace in namespaces)
    # Copies go to the one source that reads origins; origins point into the one that re-keys.
    assert [s.rekeys for s in INPUT_SOURCES].count(True) == 1
    assert [s.reads_origin for s in INPUT_SOURCES].count(True) == 1
    assert Origin(0, 0).source.rekeys


@SOURCES
def test_the_worker_consumes_the_source_a_fetch_at_a_time(
    app: TaggerApp, topics: Topics, source: InputSource
) -> None:
    topic = topics.inputs[source]
    assert any(topic in subscribed.topics for subscribed in app.topics)
    assert topic in app.batch_topics  # handed over a whole fetch at a time
    assert topics.source_of(topic) is source


@SOURCES
def test_the_sources_records_are_guarded_by_its_own_watermark(source: InputSource) -> None:
    pipeline = Pipeline(
        Engine(load_rules(BUNDLED_RULES)), MemoryStore(copies=True), MAX_EVENT_BYTES
    )
    event = make_event("purchase", amount=10)
    record = Record(2, 41, event.model_dump_json().encode(), b"u1")
    batch = pipeline.prepare(2, [record], source=source)
    assert batch.offsets == {"u1": {source.watermark(2): 41}}
    others = {other.watermark(2) for other in INPUT_SOURCES if other is not source}
    assert source.watermark(2) not in others | {Origin(2, 0).watermark}


@SOURCES
def test_the_sources_lag_is_reported(topics: Topics, source: InputSource) -> None:
    tp = TP(topics.inputs[source], 6)
    group = FakeGroup()
    group.consumer.assigned = {tp, TP("someone-elses-topic", 6)}
    group.consumer.ends, group.consumer.positions = {tp: 50}, {tp: 42}
    asyncio.run(LagGauge(group, Progress(), topics).report())
    labels = {"topic": tp.topic, "partition": "6"}
    assert REGISTRY.get_sample_value("tagger_consumer_lag_messages", labels) == 8


@SOURCES
def test_a_partition_of_the_source_makes_the_worker_ready(
    topics: Topics, source: InputSource
) -> None:
    class Reachable:
        def ping(self) -> None:
            pass

    assigned = topics.assigned({TP(topics.inputs[source], 0), TP("someone-elses-topic", 1)})
    body, status = readiness(assigned, Reachable(), live=None)
    assert body["partitions"] == 1 and "no partitions assigned" not in body["problems"]
    assert status == 503  # no rules loaded here


@SOURCES
def test_a_dead_letter_of_the_source_names_its_topic(topics: Topics, source: InputSource) -> None:
    dead = DeadLetter(Record(3, 17, b"{"), "invalid_json", "not JSON", source)
    letter = orjson.loads(dead.to_json(topics.inputs))
    assert (letter["topic"], letter["partition"], letter["offset"]) == (
        topics.inputs[source],
        3,
        17,
    )
    if source.reads_origin:  # a copy names its origin, in the source that re-keys
        copy = DeadLetter(Record(3, 17, b"{"), "invalid_json", "not JSON", source, Origin(1, 5))
        letter = orjson.loads(copy.to_json(topics.inputs))
        origin_topic = topics.inputs[Origin(1, 5).source]
        assert (letter["topic"], letter["partition"], letter["offset"]) == (origin_topic, 1, 5)
