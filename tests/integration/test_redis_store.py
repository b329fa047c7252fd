"""The Redis store against a real redis-server: same results as in memory, atomic and idempotent."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import redis

from streams.cli import main
from streams.local_stack import RedisServer
from streams.redis_store import REDELIVERED, SAVED, Client, RedisStore, StoreConflictError
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES
from taggers.outputs import Output, output_to_dict
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from tests.support.core import FailsOnRefunds, make_event

pytestmark = pytest.mark.integration
RULES = load_rules(BUNDLED_RULES)


@pytest.fixture(params=["redis", "cluster"])
def any_client(request: pytest.FixtureRequest) -> Client:
    """A single Redis server, or a three-node Redis Cluster: the store runs on both."""
    name = "redis_client" if request.param == "redis" else "cluster_client"
    client: Client = request.getfixturevalue(name)
    return client


def test_a_replay_on_redis_equals_the_replay_in_memory(any_client: Client) -> None:
    redis_client = any_client
    lines = list(simulate(SimulationConfig(users=60, days=200, seed=9)))
    memory, on_redis = MemoryStore(), RedisStore(redis_client)
    expected = [
        output_to_dict(o)
        for o in Replay(Engine(RULES), memory).run(lines)
        if not isinstance(o, BadLine)
    ]
    got = [
        output_to_dict(o)
        for o in Replay(Engine(RULES), on_redis).run(lines)
        if not isinstance(o, BadLine)
    ]
    assert len(expected) > 500
    assert got == expected
    assert sorted(on_redis.users()) == sorted(memory.users())
    fresh = RedisStore(redis_client)  # read back through a new store: nothing cached
    stored = fresh.load(sorted(memory.users()))
    for user in memory.users():
        want = memory.get(user)
        assert want is not None
        assert stored[user].to_dict() == want.to_dict()
    for tag in ("high_value", "rfm_important_value", "member_regular"):
        assert fresh.tag_members(tag) == memory.tag_members(tag)
    # The stage and audience sizes the worker's gauges report, without a scan.
    stages = list(RULES.lifecycle.stages) if RULES.lifecycle else []
    by_stage, by_tag = fresh.population(stages)
    profiles = [p for u in memory.users() if (p := memory.get(u)) is not None]
    assert by_stage == {s: sum(p.stage == s for p in profiles) for s in stages}
    assert by_tag == {t: len(memory.tag_members(t)) for t in by_tag}
    assert set(by_tag) == {t for p in profiles for t in p.tags} | set(by_tag)
    assert all(by_tag[t] > 0 for p in profiles for t in p.tags)
    # A recompute's paged scan meets every user, on a cluster node after node.
    cursor, seen = "0", set[str]()
    while True:
        cursor, page = fresh.users_page(cursor, 7)
        seen.update(page)
        if cursor == "0":
            break
    assert seen == set(memory.users())


def _value(store: RedisStore, name: str) -> Any:
    """An aggregate's value in u1's stored profile, as rules read it."""
    profile = store.load(["u1"])["u1"]
    return Engine(RULES).value_of(name, profile, profile.clock)


def test_a_redelivered_write_changes_nothing(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", amount=100))
    assert store.save([profile], partition=3, offsets={"u1": {"3": 41}}) == {"u1": SAVED}
    assert store.offsets("u1") == {"3": 41}

    # The same batch again (a crash before the offset commit): refused as a redelivery.
    replayed = store.load(["u1"])["u1"]
    engine.apply(replayed, make_event("purchase", amount=100))
    assert store.save([replayed], partition=3, offsets={"u1": {"3": 41}}) == {"u1": REDELIVERED}
    assert _value(RedisStore(redis_client), "orders") == 1

    # Offsets compare as numbers, not strings: 100 is past 41.
    assert store.save([replayed], partition=3, offsets={"u1": {"3": 100}}) == {"u1": SAVED}
    assert store.offsets("u1") == {"3": 100}


def test_a_second_writer_is_refused(redis_client: redis.Redis) -> None:
    engine = Engine(RULES)
    first, zombie = RedisStore(redis_client), RedisStore(redis_client)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("view", category="美妆"))
    first.save([profile])
    mine, stale = first.load(["u1"])["u1"], zombie.load(["u1"])["u1"]
    engine.apply(mine, make_event("purchase", amount=10))
    first.save([mine])
    engine.apply(stale, make_event("purchase", amount=99))
    with pytest.raises(StoreConflictError) as caught:
        zombie.save([stale])
    assert caught.value.user_ids == ["u1"]
    assert _value(RedisStore(redis_client), "spend_total") == 10


def test_one_store_refuses_a_write_from_a_read_older_than_its_own_last_write(
    redis_client: redis.Redis,
) -> None:
    # The worker may read a user for two batches of one fetch (an event topic and the
    # re-keyed topic): the read a write came from decides, not the store's last write.
    engine = Engine(RULES)
    store = RedisStore(redis_client)
    store.save([engine.new_profile("u1")])
    first, second = store.load(["u1"])["u1"], store.load(["u1"])["u1"]
    engine.apply(first, make_event("purchase", amount=10))
    engine.apply(second, make_event("purchase", amount=99))
    store.save([first])
    with pytest.raises(StoreConflictError):
        store.save([second])
    engine.apply(first, make_event("purchase", amount=5))
    store.save([first])  # the writer's own next write is fine: it knows what it wrote
    assert _value(store, "spend_total") == 15


def test_an_event_the_engine_fails_on_goes_to_the_dlq_and_leaves_no_trace(
    redis_client: redis.Redis,
) -> None:
    good = [make_event("purchase", amount=100), make_event("purchase", day=2, amount=50)]
    refund = make_event("refund", day=1, amount=100)
    stream = [good[0], refund, good[1]]
    records = [
        Record(0, n, event.model_dump_json().encode(), b"u1") for n, event in enumerate(stream)
    ]
    pipeline = Pipeline(FailsOnRefunds(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)

    batch = pipeline.prepare(0, records)
    pipeline.save(batch)

    assert [(d.record.offset, d.reason, d.message) for d in batch.dead] == [
        (1, "engine_error", "ZeroDivisionError: division by zero")
    ]
    assert batch.offsets == {"u1": {"0": 2}}  # the refund is consumed: a redelivery skips it too
    engine = Engine(RULES)
    want = engine.new_profile("u1")
    for event in good:
        engine.apply(want, event)
    assert RedisStore(redis_client).load(["u1"])["u1"] == want


def test_events_redis_already_has_still_move_the_partitions_watermark(
    redis_client: redis.Redis,
) -> None:
    # A worker taking over a partition whose last events the previous owner applied (but
    # did not commit) sees them again: its event-time sweeps must still reach their time.
    events = [make_event("purchase", user=u, day=d, amount=10) for u, d in (("u1", 1), ("u2", 5))]
    records = [
        Record(0, n, e.model_dump_json().encode(), e.user_id.encode()) for n, e in enumerate(events)
    ]
    first = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    first.save(first.prepare(0, records))

    taker = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    batch = taker.prepare(0, records)
    assert batch.outcomes == {("purchase", "redelivered"): 2} and not batch.profiles
    assert taker.watermark(0) == events[0].ts  # the time both users' events reached


class _FailsOnDeadlines(Engine):
    """An engine with a bug: it raises when advancing one user's clock."""

    def advance(self, profile: Profile, now: int) -> list[Output]:
        if profile.user_id == "u2":
            raise KeyError("oops")
        return super().advance(profile, now)


def test_a_deadline_the_engine_fails_on_is_dropped_and_the_others_fire(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client)
    engine = Engine(RULES)
    first = {u: engine.new_profile(u) for u in ("u1", "u2")}
    for user, profile in first.items():
        engine.apply(profile, make_event("purchase", user=user, amount=100))
    store.save(first.values())
    due = max(p.due or 0 for p in first.values())
    pipeline = Pipeline(_FailsOnDeadlines(RULES), store, MAX_EVENT_BYTES)

    batch = pipeline.sweep(0, due)
    pipeline.save(batch)

    assert list(batch.profiles) == ["u1"]  # u1's timers fired; u2's profile is untouched
    assert store.load(["u2"])["u2"] == first["u2"]
    assert store.due(due) == [] and pipeline.sweep(0, due).profiles == {}


def test_audiences_page_by_user_id(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    engine = Engine(RULES)
    profiles = []
    for n in range(7):
        profile = engine.new_profile(f"u{n}")
        engine.apply(profile, make_event("purchase", user=f"u{n}", amount=1500))
        profiles.append(profile)
    store.save(profiles)
    assert store.tag_members("high_value") == [f"u{n}" for n in range(7)]
    assert store.tag_members("high_value", limit=3) == ["u0", "u1", "u2"]
    assert store.tag_members("high_value", after="u2", limit=3) == ["u3", "u4", "u5"]
    assert store.tag_members("high_value", after="u5", limit=3) == ["u6"]

    engine.apply(profiles[0], make_event("view", user="u0", day=100))  # spend leaves the window
    store.save([profiles[0]])
    assert "u0" not in store.tag_members("high_value")


def test_deadlines_are_indexed_per_partition(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", amount=10))
    assert profile.due is not None
    store.save([profile], partition=2)
    assert store.due(profile.due - 1, partition=2) == []
    assert store.due(profile.due, partition=2) == ["u1"]
    assert store.due(profile.due, partition=0) == []
    store.drop_deadlines(["u1"], partition=2)
    assert store.due(profile.due, partition=2) == []


def test_functions_lost_by_a_restart_are_loaded_again(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    redis_client.function_flush()
    profile = Engine(RULES).new_profile("u1")
    assert store.save([profile]) == {"u1": SAVED}


def test_bad_lines_do_not_reach_the_store(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client)
    outputs = list(Replay(Engine(RULES), store).run(["not json", '{"user_id": 1}']))
    assert all(isinstance(o, BadLine) for o in outputs) and len(outputs) == 2
    assert list(store.users()) == []


def test_tagger_profile_prints_a_stored_profile(
    redis_client: redis.Redis,
    redis_server: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", amount=1200, channel="wecom"))
    RedisStore(redis_client).save([profile])
    monkeypatch.setenv("TAGGER_REDIS_URL", redis_server.url)

    assert main(["profile", "u1"]) == 0
    out = capsys.readouterr().out
    assert "user u1: stage new (新客) since 2026-01-01T00:00:00.000Z" in out
    assert "high_value (高价值客户) since 2026-01-01T00:00:00.000Z  because" in out
    assert "spend_90d=1200" in out

    assert main(["profile", "u1", "--json"]) == 0
    view = orjson.loads(capsys.readouterr().out)
    assert view["tags"]["source_wecom"]["rule"] == "source"
    assert view["aggregates"]["orders"] == 1

    assert main(["profile", "nobody"]) == 1
    assert "no profile for user 'nobody'" in capsys.readouterr().err


def test_a_refused_write_leaves_audiences_and_deadlines_as_stored(
    redis_client: redis.Redis,
) -> None:
    engine = Engine(RULES)
    store, zombie = RedisStore(redis_client), RedisStore(redis_client)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", amount=1500))
    store.save([profile], partition=2)
    assert store.tag_members("high_value") == ["u1"]
    mine, stale = store.load(["u1"])["u1"], zombie.load(["u1"])["u1"]
    engine.apply(mine, make_event("purchase", day=1, amount=10))
    store.save([mine], partition=2)
    # The zombie's view: the tag gone and no deadline (as a stale profile may say).
    del stale.tags["high_value"]
    stale.due = None
    with pytest.raises(StoreConflictError):
        zombie.save([stale], partition=2)
    assert store.tag_members("high_value") == ["u1"]
    assert store.due(mine.due or 0, partition=2) == ["u1"]
