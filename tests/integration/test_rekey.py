"""Re-keyed events are applied exactly once: guarded by their origin, not by the copy.

An event whose Kafka key is not its user id is re-sent to the re-keyed topic with its
origin (input partition and offset). A crash makes the copies go out again under new
offsets of the re-keyed topic; the pipeline must still apply each event once, in order,
and give what the replay gives. Real Redis: the store's write is the guard's other half.
"""

from __future__ import annotations

import random

import orjson
import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.redis_store import RedisStore
from taggers import sources
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES, BehaviourEvent
from taggers.pipeline import BAD_ORIGIN, Copy, Pipeline, Prepared, Record
from taggers.profile import Profile
from taggers.ruleset import load_rules
from taggers.sources import EVENTS, ORIGIN_HEADER, Origin, origin_of
from tests.support.core import FailsOnRefunds, make_event

pytestmark = pytest.mark.integration
RULES = load_rules(BUNDLED_RULES)
REKEYED = 5  # the re-keyed partition of the tests' users (any number does here)
TOPICS = {EVENTS: "events", sources.REKEYED: "events-by-user"}


def unkeyed(partition: int, events: list[BehaviourEvent], first: int = 0) -> list[Record]:
    """Events as an unkeyed producer left them on an input partition."""
    return [
        Record(partition, first + n, event.model_dump_json().encode())
        for n, event in enumerate(events)
    ]


def copies_of(pipeline: Pipeline, records: list[Record]) -> list[Copy]:
    """What the worker re-sends for these input records (and nothing else it does)."""
    batch = pipeline.prepare(records[0].partition, records, source=EVENTS)
    assert not batch.profiles and len(batch.rekey) == len(records)
    return batch.rekey


def as_sent(copies: list[Copy], first: int) -> list[Record]:
    """Copies as they arrive on the re-keyed partition, from offset ``first`` on."""
    return [
        Record(REKEYED, first + n, c.value, c.user_id.encode(), [c.origin.header()])
        for n, c in enumerate(copies)
    ]


def apply(pipeline: Pipeline, records: list[Record]) -> Prepared:
    """Prepare and save one batch of the re-keyed partition, as the worker does."""
    batch = pipeline.prepare(REKEYED, records, source=sources.REKEYED)
    pipeline.save(batch)
    return batch


def replayed(events: list[BehaviourEvent], user: str = "u1") -> Profile:
    engine = Engine(RULES)
    profile = engine.new_profile(user)
    for event in events:
        if event.user_id == user:
            engine.apply(profile, event)
    return profile


def purchases(user: str, count: int, start: float = 0.0) -> list[BehaviourEvent]:
    return [
        make_event("purchase", user=user, day=start + n / 10, amount=10 + n) for n in range(count)
    ]


def test_copies_sent_again_under_new_offsets_are_applied_once(redis_client: redis.Redis) -> None:
    # 60 events: more than the 32 recent event ids a profile remembers, so only the
    # guard can tell the copies sent again from new events.
    events = purchases("u1", 60)
    pipeline = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    sent = copies_of(pipeline, unkeyed(2, events, first=100))
    assert [c.origin for c in sent] == [Origin(2, 100 + n) for n in range(60)]

    first = apply(pipeline, as_sent(sent, 0))
    assert first.offsets == {"u1": {"k2": 159}}
    # A crash before the input offsets were committed: from offset 110 on, all again.
    again = apply(pipeline, as_sent(sent[10:], 60))
    assert again.outcomes == {("purchase", "redelivered"): 50} and not again.profiles
    # And in one batch with its original (a redo while the first copies still wait).
    fresh = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    mixed = fresh.prepare(REKEYED, as_sent(sent[50:] + sent[55:], 110), source=sources.REKEYED)
    assert not mixed.profiles

    stored = RedisStore(redis_client)
    assert stored.load(["u1"])["u1"] == replayed(events)
    assert stored.offsets("u1") == {"k2": 159}


def test_a_partition_feeding_a_user_keyed_and_unkeyed_keeps_two_watermarks(
    redis_client: redis.Redis,
) -> None:
    # Partition 5 holds u1's events keyed by u1 (applied there) and unkeyed ones (sent
    # on): a keyed event at offset 7 must not hide the copy of the one at offset 3.
    unkeyed_part = purchases("u1", 2)
    keyed_part = purchases("u1", 2, start=1)
    records = [
        *unkeyed(REKEYED, unkeyed_part, first=3),
        *[
            Record(REKEYED, 7 + n, e.model_dump_json().encode(), b"u1")
            for n, e in enumerate(keyed_part)
        ],
    ]
    pipeline = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    direct = pipeline.prepare(REKEYED, records, source=EVENTS)
    assert [c.origin for c in direct.rekey] == [Origin(REKEYED, 3), Origin(REKEYED, 4)]
    pipeline.save(direct)
    assert direct.offsets == {"u1": {str(REKEYED): 8}}

    via = apply(pipeline, as_sent(direct.rekey, 0))
    assert via.outcomes == {("purchase", "applied"): 2}
    store = RedisStore(redis_client)
    assert store.offsets("u1") == {str(REKEYED): 8, f"k{REKEYED}": 4}
    # Each path's redelivery is refused by its own watermark.
    assert not pipeline.prepare(REKEYED, records, source=EVENTS).profiles
    assert not apply(pipeline, as_sent(direct.rekey, 2)).profiles
    assert Engine(RULES).value_of("orders", store.load(["u1"])["u1"], 0) == 4


def test_copies_from_several_input_partitions_move_each_watermark_in_one_write(
    redis_client: redis.Redis,
) -> None:
    # An unkeyed producer spread u1 over input partitions 0 and 1: one batch of the
    # re-keyed partition holds copies of both, and one write moves both watermarks.
    events = purchases("u1", 40)
    pipeline = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    from_0 = copies_of(pipeline, unkeyed(0, events[0::2], first=500))
    from_1 = copies_of(pipeline, unkeyed(1, events[1::2], first=20))
    arrived = [c for pair in zip(from_0, from_1, strict=True) for c in pair]
    batch = apply(pipeline, as_sent(arrived, 0))
    assert batch.offsets == {"u1": {"k0": 519, "k1": 39}}
    store = RedisStore(redis_client)
    assert store.offsets("u1") == {"k0": 519, "k1": 39}
    # Input partition 1 is redone from its offset 30: those copies are all known.
    assert not apply(pipeline, as_sent(from_1[10:], 40)).profiles
    assert store.load(["u1"])["u1"] == replayed(arrived_events(arrived))


def arrived_events(copies: list[Copy]) -> list[BehaviourEvent]:
    return [BehaviourEvent.model_validate_json(c.value) for c in copies]


def test_records_without_an_origin_keep_their_own_position_and_a_bad_origin_is_a_dead_letter(
    redis_client: redis.Redis,
) -> None:
    by_hand = [purchases("u1", 1)[0], purchases("u2", 1)[0], purchases("u1", 1, start=2)[0]]
    records = [
        Record(REKEYED, 0, by_hand[0].model_dump_json().encode(), b"u1"),
        Record(REKEYED, 1, by_hand[1].model_dump_json().encode(), b"u2", [(ORIGIN_HEADER, b"x")]),
        Record(REKEYED, 2, by_hand[2].model_dump_json().encode(), b"u1", [("other", b"1")]),
    ]
    pipeline = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    batch = apply(pipeline, records)
    assert batch.offsets == {"u1": {f"r{REKEYED}": 2}}
    assert [(d.record.offset, d.reason) for d in batch.dead] == [(1, BAD_ORIGIN)]
    dead = orjson.loads(batch.dead[0].to_json(TOPICS))
    assert (dead["topic"], dead["partition"], dead["offset"]) == ("events-by-user", REKEYED, 1)
    assert "PARTITION:OFFSET" in dead["error"] and dead["value"] == by_hand[1].model_dump_json()
    # Redelivered: refused by the re-keyed topic's own offsets.
    assert not apply(pipeline, records).profiles


def test_a_copy_the_engine_fails_on_is_a_dead_letter_at_its_origin(
    redis_client: redis.Redis,
) -> None:
    events = [*purchases("u1", 1), make_event("refund", day=1, amount=5), *purchases("u1", 1, 2)]
    pipeline = Pipeline(FailsOnRefunds(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    sent = copies_of(pipeline, unkeyed(3, events, first=40))
    batch = apply(pipeline, as_sent(sent, 900))
    dead = [orjson.loads(d.to_json(TOPICS)) for d in batch.dead]
    # Where the event entered, as for any input event: a copy sent again dedupes with it.
    assert [(d["topic"], d["partition"], d["offset"], d["reason"]) for d in dead] == [
        ("events", 3, 41, "engine_error")
    ]
    assert batch.offsets == {"u1": {"k3": 42}}


@given(
    st.lists(
        st.tuples(st.sampled_from([ORIGIN_HEADER, "other"]), st.binary(max_size=30)), max_size=3
    )
)
def test_reading_an_origin_never_fails_but_with_a_reason(
    headers: list[tuple[str, bytes]],
) -> None:
    try:
        found = origin_of(headers)
    except ValueError as error:
        assert ORIGIN_HEADER in str(error)
        return
    if found is not None:
        assert found.header() in headers
        assert 0 <= found.partition < 2**31 and 0 <= found.offset < 2**63


@given(st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1))
def test_an_origin_reads_back_as_written(partition: int, offset: int) -> None:
    at = Origin(partition, offset)
    assert origin_of([("other", b"1"), at.header()]) == at


def test_an_origin_out_of_kafkas_range_is_refused() -> None:
    for value in (b"2147483648:0", b"0:9223372036854775808", b"-1:5", b"1:", b"1:2:3"):
        with pytest.raises(ValueError, match=ORIGIN_HEADER):
            origin_of([(ORIGIN_HEADER, value)])
    with pytest.raises(ValueError, match="expected one"):
        origin_of([(ORIGIN_HEADER, b"1:2"), (ORIGIN_HEADER, b"1:2")])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.integers(0, 2**32))
def test_input_crashes_and_reprocessing_crashes_apply_each_event_once_in_order(
    redis_client: redis.Redis, seed: int
) -> None:
    """Input partitions 0 and 1 re-send their copies from a committed offset after any
    crash (mid-send too); the re-keyed partition is consumed in batches that crash before
    or after their save. Each event is applied exactly once, and each user ends as the
    replay of their events."""
    redis_client.flushall()
    rng = random.Random(seed)
    users = {0: ["a", "b"], 1: ["c", "b2"]}  # each user on one input partition: in order
    inputs = {
        p: [
            make_event("purchase", user=rng.choice(names), day=n / 50, amount=rng.randint(1, 99))
            for n in range(rng.randint(1, 70))
        ]
        for p, names in users.items()
    }
    sender = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    copies = {p: copies_of(sender, unkeyed(p, events)) for p, events in inputs.items()}

    log: list[Copy] = []  # the re-keyed partition, as the senders left it
    committed = dict.fromkeys(inputs, 0)
    while any(committed[p] < len(inputs[p]) for p in inputs):
        p = rng.choice([p for p in inputs if committed[p] < len(inputs[p])])
        sent = rng.randint(committed[p] + 1, len(inputs[p]))  # a batch, maybe cut by a crash
        log.extend(copies[p][committed[p] : sent])
        committed[p] = rng.choice([committed[p], sent])  # committed after its acks, or not

    applied, position = 0, 0
    while position < len(log):
        end = rng.randint(position + 1, min(len(log), position + 40))
        worker = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
        arrived = as_sent(log[position:end], position)
        batch = worker.prepare(REKEYED, arrived, source=sources.REKEYED)
        if rng.random() < 0.2:
            continue  # killed before the save: the batch is redone from the same offset
        worker.save(batch)
        applied += batch.outcomes[("purchase", "applied")]
        if rng.random() < 0.8:
            position = end  # else killed after the save, before the commit
    assert applied == sum(len(events) for events in inputs.values())
    store = RedisStore(redis_client)
    for p, names in users.items():
        for user in names:
            if any(e.user_id == user for e in inputs[p]):
                assert store.load([user])[user] == replayed(inputs[p], user), user
