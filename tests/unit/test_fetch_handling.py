"""Fetch handling without a broker: the delivery guarantee and its failure paths.

The worker's fetch handling (``streams.worker.fetches``) is driven with a fake producer
and group member and the in-memory store (handing out copies, as Redis does), which can
refuse a save as a conflict or be unreachable on cue. Per fetch: everything is sent and
acked by the broker before anything is saved, and saved before any message is acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import pytest
from faust.types import TP
from prometheus_client import REGISTRY

from streams.progress import Progress
from streams.worker.fetches import FetchHandling
from streams.worker.sending import Sender
from streams.worker.timers import Timers
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES, BehaviourEvent
from taggers.pipeline import Pipeline
from taggers.profile import Profile
from taggers.ruleset import load_rules
from taggers.sources import Origin
from taggers.store import MemoryStore
from tests.support.core import FailsOnRefunds, make_event
from tests.support.worker import (
    SETTINGS,
    TOPICS,
    CuedStore,
    FakeGroup,
    FakeProducer,
    fetch,
    message,
)

RULES = load_rules(BUNDLED_RULES)
EVENTS_0 = TP(SETTINGS.events_topic, 0)
EVENTS_1 = TP(SETTINGS.events_topic, 1)
REKEYED_3 = TP(SETTINGS.rekeyed_topic, 3)
OUTPUT_TOPICS = {SETTINGS.tag_changes_topic, SETTINGS.transitions_topic, SETTINGS.alerts_topic}
T = TypeVar("T")


@dataclass
class Worker:
    """Fetch handling with fakes around it."""

    store: CuedStore
    producer: FakeProducer
    group: FakeGroup
    progress: Progress
    handling: FetchHandling
    timers: Timers

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The outputs sent, in order, as their topics carry them."""
        return [sent.json for sent in self.producer.sent if sent.topic in OUTPUT_TOPICS]

    @property
    def dead(self) -> list[dict[str, Any]]:
        """The DLQ records sent."""
        return [sent.json for sent in self.producer.on(SETTINGS.dlq_topic)]

    @property
    def acked(self) -> list[tuple[str, int, int]]:
        """The messages acked, as (topic, partition, offset)."""
        return [(m.topic, m.partition, m.offset) for m in self.group.consumer.acked]

    def orders(self, user: str) -> Any:
        """A stored user's order count."""
        profile = MemoryStore.load(self.store, [user])[user]
        return Engine(RULES).value_of("orders", profile, 0)


def worker(engine: Engine | None = None) -> Worker:
    store, producer, group, progress = CuedStore(), FakeProducer(), FakeGroup(), Progress()
    pipeline = Pipeline(engine or Engine(RULES), store, MAX_EVENT_BYTES)
    sender = Sender(producer.start, TOPICS)
    lock = asyncio.Lock()
    handling = FetchHandling(pipeline, TOPICS, sender, group, progress, lock)
    timers = Timers(pipeline, sender, lock, group=group, progress=progress, topics=TOPICS)
    return Worker(store, producer, group, progress, handling, timers)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def purchase(user: str = "u1", day: float = 1.0, amount: int = 120) -> BehaviourEvent:
    return make_event("purchase", user=user, day=day, amount=amount)


def replayed(events: list[BehaviourEvent], user: str = "u1") -> Profile:
    engine = Engine(RULES)
    profile = engine.new_profile(user)
    for event in events:
        engine.apply(profile, event)
    return profile


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


def test_a_fetch_is_sent_saved_and_then_acked() -> None:
    w = worker()
    events = [purchase("u1"), purchase("u2", day=2)]
    batch = fetch(message(EVENTS_0, 10, events[0]), message(EVENTS_0, 11, b"{not json"))
    batch.parts[EVENTS_1] = [message(EVENTS_1, 4, events[1])]
    run(w.handling.take(batch))

    assert w.outputs and {o["user_id"] for o in w.outputs} == {"u1", "u2"}
    assert [(d["topic"], d["partition"], d["offset"], d["reason"]) for d in w.dead] == [
        (SETTINGS.events_topic, 0, 11, "invalid_json")
    ]
    assert MemoryStore.load(w.store, ["u1", "u2"]) == {
        "u1": replayed(events[:1]),
        "u2": replayed(events[1:], "u2"),
    }
    assert w.store.offsets("u1") == {"0": 10} and w.store.offsets("u2") == {"1": 4}
    events_topic = SETTINGS.events_topic
    assert w.acked == [(events_topic, 0, 10), (events_topic, 0, 11), (events_topic, 1, 4)]
    assert w.progress.applied == {EVENTS_0: 12, EVENTS_1: 5}


def test_a_send_the_broker_refuses_saves_nothing_and_acks_nothing() -> None:
    w = worker()
    w.producer.refuse = RuntimeError("the broker refused the record")
    with pytest.raises(RuntimeError, match="refused"):
        run(w.handling.take(fetch(message(EVENTS_0, 10, purchase()))))
    assert not list(w.store.users()) and w.store.saves == 0
    assert w.acked == []
    assert w.progress.applied == {}  # the partition is not caught up: timers wait


def test_a_save_conflict_redoes_the_batch_and_sends_the_same_outputs() -> None:
    w = worker()
    w.store.conflicts = 1  # another writer changed the user's profile since it was read
    before = sample("tagger_store_conflicts_total")
    run(w.handling.take(fetch(message(EVENTS_0, 10, purchase()))))

    assert sample("tagger_store_conflicts_total") == before + 1
    first, again = w.outputs[: len(w.outputs) // 2], w.outputs[len(w.outputs) // 2 :]
    assert first and first == again  # the same ids and content: subscribers drop them
    assert w.orders("u1") == 1 and w.store.saves == 1
    assert w.acked == [(SETTINGS.events_topic, 0, 10)]


def test_a_conflict_with_a_writer_that_applied_the_batch_first_counts_it_once() -> None:
    w = worker()
    records = fetch(message(EVENTS_0, 10, purchase()), message(EVENTS_0, 11, purchase(day=2)))
    # A worker that lost the partition applied the same messages meanwhile.
    theirs = worker().handling.prepare(EVENTS_0, records.parts[EVENTS_0])
    w.store.rival = [(list(theirs.profiles.values()), theirs.offsets)]
    w.store.conflicts = 1
    run(w.handling.take(records))

    assert w.orders("u1") == 2  # not 4
    assert w.store.offsets("u1") == {"0": 11}
    sent_once = [o["id"] for o in w.outputs]
    assert len(sent_once) == len(set(sent_once))  # the redo found them all applied
    assert w.acked == [(SETTINGS.events_topic, 0, 10), (SETTINGS.events_topic, 0, 11)]


@pytest.mark.parametrize("call", ["load_applied", "save"])
def test_while_redis_is_away_the_fetch_waits_and_nothing_is_acked(call: str) -> None:
    w = worker()
    w.store.down = {call}

    async def scenario() -> None:
        task = asyncio.create_task(w.handling.take(fetch(message(EVENTS_0, 10, purchase()))))
        await w.store.outage.wait()
        await asyncio.sleep(0.15)  # a retry or two
        assert not task.done() and w.acked == [] and w.store.saves == 0
        assert sample("tagger_redis_up") == 0
        assert bool(w.outputs) == (call == "save")  # sent before the save, not before the read
        w.store.down = set()
        await task

    run(scenario())
    assert sample("tagger_redis_up") == 1
    assert w.orders("u1") == 1 and w.store.saves == 1
    assert w.acked == [(SETTINGS.events_topic, 0, 10)]


def test_an_event_the_engine_fails_on_is_a_dead_letter_and_the_batch_goes_on() -> None:
    w = worker(FailsOnRefunds(RULES))
    good = [purchase(day=1), purchase(day=3)]
    refund = make_event("refund", day=2, amount=30)
    run(
        w.handling.take(
            fetch(
                message(EVENTS_0, 10, good[0]),
                message(EVENTS_0, 11, refund),
                message(EVENTS_0, 12, good[1]),
            )
        )
    )
    assert [(d["topic"], d["partition"], d["offset"], d["reason"]) for d in w.dead] == [
        (SETTINGS.events_topic, 0, 11, "engine_error")
    ]
    # Nothing of the refund is left: the batch was prepared again without it.
    assert MemoryStore.load(w.store, ["u1"])["u1"] == replayed(good)
    assert w.store.offsets("u1") == {"0": 12}
    assert len(w.acked) == 3


def test_parts_of_a_fetch_that_share_a_user_are_read_again_in_turn() -> None:
    w = worker()
    keyed, copied = purchase(day=1), purchase(day=2)
    # u1 on the events topic, and a copy of u1's event from input partition 1 on the
    # re-keyed topic, in one fetch: the second part must read u1 after the first's save.
    records = fetch(
        message(EVENTS_0, 5, keyed),
        message(REKEYED_3, 40, copied, origin=Origin(1, 7)),
    )
    run(w.handling.take(records))

    assert w.orders("u1") == 2
    assert w.store.offsets("u1") == {"0": 5, "k1": 7}
    assert MemoryStore.load(w.store, ["u1"])["u1"] == replayed([keyed, copied])
    assert w.store.saves == 2


def test_a_fetch_from_before_a_rebalance_is_left_alone() -> None:
    w = worker()
    w.group.consumer_generation_id = 2  # the seek after the rebalance fetches it again
    run(w.handling.take(fetch(message(EVENTS_0, 10, purchase(), generation=1))))
    assert w.producer.sent == [] and w.store.saves == 0
    assert w.group.consumer.tracked == [] and w.acked == []


def test_an_event_keyed_by_another_user_is_re_sent_with_its_origin_before_the_ack() -> None:
    w = worker()
    event = purchase("u9")
    run(w.handling.take(fetch(message(EVENTS_1, 33, event, key=b"someone-else"))))
    [copy] = w.producer.on(SETTINGS.rekeyed_topic)
    assert (copy.key, copy.value) == (b"u9", event.model_dump_json().encode())
    assert copy.headers == [Origin(1, 33).header()]
    assert copy.timestamp == event.ts / 1000  # the original's send time
    assert not list(w.store.users())  # applied when the copy is read back
    assert w.acked == [(SETTINGS.events_topic, 1, 33)]


def test_dead_letters_name_the_topic_their_position_is_in() -> None:
    # The bug fixed: a dead letter read from the re-keyed topic named the events topic
    # beside the re-keyed topic's partition and offset. It names where it entered: the
    # topic it was read from at its position there, or, for a copy, its origin.
    w = worker()
    copy_of = Origin(1, 7)
    records = fetch(
        message(EVENTS_0, 2, b'{"user_id": "u1"}'),
        message(REKEYED_3, 40, b"{", key=b"u1", origin=copy_of),
        message(REKEYED_3, 41, b"{", key=b"u1"),  # produced there by hand
    )
    bad_origin = message(REKEYED_3, 42, purchase())
    bad_origin.headers = [("tagger-origin", b"nowhere")]
    records.parts[REKEYED_3].append(bad_origin)
    run(w.handling.take(records))
    assert [(d["topic"], d["partition"], d["offset"], d["reason"]) for d in w.dead] == [
        (SETTINGS.events_topic, 0, 2, "schema"),
        (SETTINGS.events_topic, 1, 7, "invalid_json"),
        (SETTINGS.rekeyed_topic, 3, 41, "invalid_json"),
        (SETTINGS.rekeyed_topic, 3, 42, "bad_origin"),
    ]
    assert orjson.loads(w.producer.on(SETTINGS.dlq_topic)[1].value)["value"] == "{"


def test_on_the_event_clock_what_a_fetch_made_due_fires_before_the_fetch_is_acked() -> None:
    w = worker()
    w.handling.after_apply = w.timers.after_fetch  # TAGGER_CLOCK=event
    w.producer.watch = lambda: len(w.acked)
    joined = make_event("member_join", user="u1", day=0)
    # Two other users' events ten days on move partition 0's event clock past u1's
    # deadline (new_member_no_order, seven days after joining without an order).
    later = [purchase("u2", day=10), purchase("u3", day=10)]
    run(w.handling.take(fetch(message(EVENTS_0, 0, joined))))
    assert not [o for o in w.outputs if o["kind"] == "alert"]
    run(w.handling.take(fetch(*(message(EVENTS_0, 1 + n, e) for n, e in enumerate(later)))))

    [alert] = [s for s in w.producer.sent if s.topic == SETTINGS.alerts_topic]
    assert (alert.json["name"], alert.json["user_id"]) == ("new_member_no_order", "u1")
    assert alert.seen == 1  # only the first fetch was acked when it was sent
    assert len(w.acked) == 3


def test_a_new_generation_tells_the_store_the_partitions_still_held() -> None:
    w = worker()
    told: list[set[int]] = []
    w.handling.on_rebalance = told.append
    # Both input topics of partition 0; only the events topic of partition 1.
    w.group.consumer.assigned = {EVENTS_0, TP(SETTINGS.rekeyed_topic, 0), EVENTS_1}
    run(w.handling.take(fetch(message(EVENTS_0, 0, purchase("u1")))))
    run(w.handling.take(fetch(message(EVENTS_0, 1, purchase("u1", day=2)))))
    assert told == [{0}]  # once per generation
    w.group.consumer_generation_id = 2
    w.group.consumer.assigned = {EVENTS_1, TP(SETTINGS.rekeyed_topic, 1)}
    run(w.handling.take(fetch(message(EVENTS_1, 0, purchase("u2"), generation=2))))
    assert told == [{0}, {1}]
