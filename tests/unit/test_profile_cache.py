"""The profiles a worker keeps of those it last wrote (``streams.profile_cache``), on a real
Redis where they meet it: a kept profile is loaded without Redis, handed out once, and its
save refused once anyone else wrote the user (then the redo reads what Redis holds)."""

from __future__ import annotations

import pytest
import redis

from streams.profile_cache import ProfileCache
from streams.redis_store import RedisStore
from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile, StoredAs
from taggers.ruleset import load_rules
from taggers.store import SAVED, StoreConflictError
from tests.support.core import make_event

RULES = load_rules(BUNDLED_RULES)
KEY = "tagger:u:{u1}"


def kept_twice(store: RedisStore, user: str = "u1") -> Profile:
    """A profile saved twice by ``store``: read back from Redis, then kept."""
    store.save([Profile(user, events=1)], offsets={user: {"0": 1}})
    found, _ = store.load_applied({user: ["0", "1"]})  # it has none of source 1
    found[user].events = 2
    assert store.save([found[user]], offsets={user: {"0": 2}}) == {user: SAVED}
    return found[user]


@pytest.mark.integration
def test_a_kept_profile_loads_without_reading_redis(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, cache_size=10)
    kept = kept_twice(store)
    # Behind the store's back, so the load shows where it reads from (v stays as it is).
    redis_client.hset(KEY, "p", b'{"user_id": "u1", "events": 99}')
    found, applied = store.load_applied({"u1": ["0", "1"]})
    assert found["u1"] is kept and found["u1"].events == 2
    assert applied == {"u1": {"0": 2}}  # the offset it wrote; none of source 1
    found["u1"].events = 3
    assert store.save([found["u1"]], offsets={"u1": {"0": 3}}) == {"u1": SAVED}


@pytest.mark.integration
def test_a_source_not_known_of_a_kept_profile_reads_redis(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, cache_size=10)
    kept = kept_twice(store)
    redis_client.hset(KEY, "o:k5", 7)  # as a re-keyed copy's write would have left it
    found, applied = store.load_applied({"u1": ["0", "k5"]})
    assert found["u1"] is not kept and applied == {"u1": {"0": 2, "k5": 7}}


@pytest.mark.integration
def test_another_writer_refuses_the_kept_profiles_save_and_the_redo_reads_redis(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client, cache_size=10)
    kept_twice(store)
    rival = RedisStore(redis_client)  # the worker that took the partition over, say
    theirs = rival.load(["u1"])["u1"]
    theirs.events = 50
    rival.save([theirs], offsets={"u1": {"0": 9}})
    stale, _ = store.load_applied({"u1": ["0"]})  # kept: the store cannot know yet
    assert stale["u1"].events == 2
    stale["u1"].events = 3
    with pytest.raises(StoreConflictError):
        store.save([stale["u1"]], offsets={"u1": {"0": 3}})
    found, applied = store.load_applied({"u1": ["0"]})
    assert found["u1"] is not stale["u1"] and found["u1"].events == 50
    assert applied == {"u1": {"0": 9}}


@pytest.mark.integration
def test_a_user_written_anew_to_the_same_version_refuses_the_kept_profile(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client, cache_size=10)
    kept_twice(store)  # version 2
    redis_client.delete(KEY)  # a forget elsewhere, and the id written twice since
    rival = RedisStore(redis_client)
    rival.save([Profile("u1", events=7)])
    again = rival.load(["u1"])["u1"]
    rival.save([again])
    assert redis_client.hget(KEY, "v") == b"2"
    stale, _ = store.load_applied({"u1": ["0"]})
    with pytest.raises(StoreConflictError):
        store.save([stale["u1"]], offsets={"u1": {"0": 3}})
    assert store.load(["u1"])["u1"].events == 7


@pytest.mark.integration
def test_a_kept_profile_is_handed_out_once_until_saved(redis_client: redis.Redis) -> None:
    store = RedisStore(redis_client, cache_size=10)
    kept = kept_twice(store)
    first, _ = store.load_applied({"u1": ["0"]})
    first["u1"].events = 1000  # changed by an engine that then fails: never saved
    second, _ = store.load_applied({"u1": ["0"]})
    assert second["u1"] is not kept and second["u1"].events == 2
    assert store.load(["u1"])["u1"].events == 2


@pytest.mark.integration
def test_a_redone_batch_after_a_conflict_applies_to_what_redis_holds(
    redis_client: redis.Redis,
) -> None:
    store = RedisStore(redis_client, cache_size=10)
    pipeline = Pipeline(Engine(RULES), store, MAX_EVENT_BYTES)
    events = [make_event("purchase", user="u1", day=d, amount=10) for d in (1, 2, 3, 4)]

    def batch(offset: int) -> list[Record]:
        value = events[offset].model_dump_json().encode()
        return [Record(0, offset, value, b"u1")]

    for offset in (0, 1):  # the second is kept
        pipeline.save(pipeline.prepare(0, batch(offset)))
    rival = Pipeline(Engine(RULES), RedisStore(redis_client), MAX_EVENT_BYTES)
    rival.save(rival.prepare(0, batch(2)))  # after a rebalance, say
    stale = pipeline.prepare(0, batch(3))
    with pytest.raises(StoreConflictError):
        pipeline.save(stale)
    redone = pipeline.prepare(0, batch(3))
    pipeline.save(redone)
    engine = Engine(RULES)
    assert engine.value_of("orders", store.load(["u1"])["u1"], events[3].ts) == 4


def kept(user: str, partition: int) -> Profile:
    profile = Profile(user)
    profile.stored = StoredAs("1", frozenset(), partition)
    return profile


def test_a_rebalance_keeps_only_the_partitions_still_held() -> None:
    cache = ProfileCache(10)
    for user, partition in [("a", 0), ("b", 1), ("c", 2)]:
        profile = kept(user, partition)
        cache.read(user, profile, {"0": None})
        cache.wrote(profile, {str(partition): 5})
    cache.keep({1, 2})
    assert cache.take("a", ()) is None
    assert cache.take("b", ["1"]) is not None and cache.take("c", ["2"]) is not None


def test_the_least_recently_saved_go_first_beyond_the_bound() -> None:
    cache = ProfileCache(2)
    profiles = {user: kept(user, 0) for user in "abc"}
    for user in "abc":
        cache.read(user, profiles[user], {})
        cache.wrote(profiles[user], None)
    assert len(cache) == 2 and cache.take("a", ()) is None
    assert ProfileCache(0).take("a", ()) is None
    nothing = ProfileCache(0)
    nothing.read("a", profiles["a"], {})
    assert len(nothing) == 0
