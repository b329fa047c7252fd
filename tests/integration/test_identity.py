"""One person across ids on the real pipeline (tansu + Redis + `tagger run`): linking,
merging, consent and forgetting, equal to `tagger replay`, through kill -9 of workers
in the middle of merges (docs/identity.md)."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from streams.local_stack import RedisServer, TansuBroker, free_port, start_worker
from streams.redis_store import RedisStore
from streams.settings import Settings
from streams.topics import ensure_topics
from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import format_ts
from taggers.outputs import output_to_dict
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.store import MemoryStore
from tests.support.core import START_MS
from tests.support.stack import (
    PARTITIONS,
    get_metrics,
    partition_of,
    pipeline_settings,
    produce,
    read_topics,
    running_worker,
    wait_for,
)

pytestmark = pytest.mark.integration
RULES = load_rules(BUNDLED_RULES)
ENGINE = Engine(RULES)


@pytest.fixture(scope="module")
def broker() -> Iterator[TansuBroker]:
    with TansuBroker() as server:
        yield server


def apart(prefix: str, count: int) -> list[tuple[str, str]]:
    """Pairs of ids (a member card, a WeCom id) that land on different partitions."""
    pairs: list[tuple[str, str]] = []
    n = 0
    while len(pairs) < count:
        card, friend = f"member:{prefix}{n}", f"wecom:{prefix}{n}"
        if partition_of(card.encode()) != partition_of(friend.encode()):
            pairs.append((card, friend))
        n += 1
    return pairs


def event(user: str, type_: str, day: float, **props: Any) -> str:
    ts = START_MS + int(day * DAY_MS)
    return orjson.dumps(
        {
            "event_id": f"{user}-{type_}-{day}-{uuid.uuid4().hex[:6]}",
            "user_id": user,
            "type": type_,
            "ts": format_ts(ts),
            "channel": "wecom" if user.startswith("wecom") else "mini_program",
            "props": props,
        }
    ).decode()


def history(user: str, first: float, rng: random.Random) -> list[str]:
    """A few weeks of a shopper: views, purchases, a share."""
    lines = [event(user, "view", first, category="美妆", sku="sku-1")]
    day = first
    for _ in range(rng.randint(2, 5)):
        day += rng.uniform(1, 6)
        lines.append(
            event(user, "purchase", day, amount=rng.choice([99, 199, 450]), category="美妆")
        )
    lines.append(event(user, "share", day + 0.5, sku="sku-1"))
    return lines


def replayed(phases: list[list[str]]) -> tuple[MemoryStore, dict[str, dict[str, Any]]]:
    store = MemoryStore()
    replay = Replay(Engine(RULES), store)
    outputs: dict[str, dict[str, Any]] = {}
    for item in replay.run([line for phase in phases for line in phase]):
        assert not isinstance(item, BadLine), item
        outputs[item.id] = output_to_dict(item)
    return store, outputs


def state(profile: Profile | None) -> dict[str, Any] | None:
    """What a merge must get right: the values rules read, the ids, the consent."""
    if profile is None:
        return None
    values = ENGINE.aggregate_values(profile, profile.clock)
    return {"aggregates": values, "ids": sorted(profile.ids), "consent": profile.consent}


def store_of(settings: Settings, client: redis.Redis) -> RedisStore:
    return RedisStore(client, prefix=settings.redis_prefix)


def settle(check: Callable[[], bool], what: str) -> None:
    wait_for(check, 120, what)


def test_linking_merging_consent_and_forgetting_equal_the_replay(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    rng = random.Random(13)
    (card, friend), (gone_card, gone_friend) = apart("a", 2)
    before = [*history(card, 0, rng), *history(friend, 1, rng)]
    before += [*history(gone_card, 0, rng), *history(gone_friend, 2, rng)]
    link = [
        event(card, "identify", 40, ids=[friend]),
        event(gone_card, "identify", 40, ids=[gone_friend]),
    ]
    after = [
        event(friend, "purchase", 41, amount=120, category="美妆"),
        event(friend, "marketing_opt_out", 42),
        event(card, "purchase", 43, amount=80, category="食品"),
    ]
    forget = [event(gone_friend, "forget", 44)]
    late = [event(gone_card, "purchase", 43.5, amount=999)]  # older than the forget
    phases = [before, link, after, forget, late]
    reference, want_outputs = replayed(phases)

    settings = pipeline_settings(broker, redis_server)
    ensure_topics(settings)
    store = store_of(settings, redis_client)
    with running_worker(settings, tmp_path) as worker:
        produce(settings, before)
        first, _ = replayed([before])
        users = [card, friend, gone_card, gone_friend]
        settle(
            lambda: (
                {u: p.events for u, p in store.load(users).items()}
                == {u: reference_events(first, u) for u in users}
            ),
            "the histories applied",
        )
        produce(settings, link)
        settle(
            lambda: store.resolve([friend, gone_friend]) == {friend: card, gone_friend: gone_card},
            "links",
        )
        settle(lambda: not store.transfers([friend, gone_friend]), "merges settled")
        produce(settings, after)
        settle(
            lambda: (p := store.load([card]).get(card)) is not None and p.consent is not None,
            "after",
        )
        produce(settings, [*forget, *late])
        settle(
            lambda: set(store.tombstones([gone_card, gone_friend])) == {gone_card, gone_friend},
            "forget",
        )
        time.sleep(2)  # the late event: applied (ignored) by now
        assert worker.poll() is None
    person = store.load([card]).get(card)
    assert state(person) == state(reference.get(card))
    assert store.resolve([friend]) == {friend: card}
    assert store.load([friend]) == {}
    assert store.load([gone_card, gone_friend]) == {}
    assert set(store.users()) == set(reference.users())
    for tag in ("koc_candidate", "high_value", "buyer"):
        assert store.tag_members(tag) == reference.tag_members(tag)
    found = read_topics(settings, want=len(want_outputs), timeout=120, distinct_ids=True)
    sent = {
        r["id"]: r
        for topic, records in found.items()
        if topic != settings.dlq_topic
        for r in records
    }
    merges = {i: r for i, r in sent.items() if r["kind"] == "identity_merge"}
    want_merges = {i: r for i, r in want_outputs.items() if r["kind"] == "identity_merge"}
    assert merges == want_merges
    assert [r for r in sent.values() if r["kind"] == "forgotten"] == [
        r for r in want_outputs.values() if r["kind"] == "forgotten"
    ]
    # Every output names the person and the id its event came under.
    under_friend = [
        r for r in sent.values() if r["user_id"] == friend and r["kind"] != "identity_merge"
    ]
    assert under_friend and all(r["person_id"] in (friend, card) for r in under_friend)
    assert not [
        r
        for r in sent.values()
        if r["kind"] == "alert"
        and r["person_id"] == card
        and r["at"] > format_ts(START_MS + 42 * DAY_MS)
    ]

    # Forget, then the whole topic again from offset 0 (a new consumer group): the
    # forgotten person does not come back, in Redis, in audiences or on the topics.
    again = settings.model_copy(
        update={"app_id": settings.app_id + "-again", "web_port": free_port()}
    )
    counts_before = {t: len(r) for t, r in found.items()}
    (tmp_path / "again").mkdir()
    with running_worker(again, tmp_path / "again"):
        settle(lambda: caught_up(again), "the second group to read every topic to its end")
    assert store.load([gone_card, gone_friend]) == {}
    assert state(store.load([card]).get(card)) == state(person)
    everything = read_topics(settings, want=None, timeout=60)
    later = [
        r
        for topic, records in everything.items()
        for r in records[counts_before[topic] :]
        if r.get("person_id") in (gone_card, gone_friend) and r["kind"] != "forgotten"
    ]
    assert later == []


def caught_up(settings: Settings) -> bool:
    """Whether a worker has applied everything of every input partition it reads."""
    try:
        exported = get_metrics(f"http://127.0.0.1:{settings.web_port}/metrics")
    except OSError:
        return False  # not listening yet
    lags = [v for (name, _), v in exported.items() if name == "tagger_consumer_lag_messages"]
    return len(lags) == 2 * PARTITIONS and not any(lags)


def reference_events(reference: MemoryStore, user: str) -> int:
    profile = reference.get(user)
    return profile.events if profile is not None else 0


def test_merges_through_kill_9_of_two_workers_equal_the_replay(
    broker: TansuBroker, redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path
) -> None:
    # Both ids of each pair on different partitions, so on different workers; every
    # fourth pair is then merged into the next (a person of four ids, through a chain).
    rng = random.Random(29)
    pairs = apart("k", 120)
    before = [line for pair in pairs for user in pair for line in history(user, 0, rng)]
    links = [event(card, "identify", 50, ids=[friend]) for card, friend in pairs]
    links += [event(pairs[n][0], "identify", 51, ids=[pairs[n + 1][1]]) for n in range(0, 120, 4)]
    after = [event(friend, "purchase", 52, amount=10) for _, friend in pairs[::3]]
    reference, _ = replayed([before, links, after])
    settings = pipeline_settings(broker, redis_server, session_timeout=6)
    ensure_topics(settings)
    group = [settings.model_copy(update={"web_port": free_port()}) for _ in range(2)]
    for number in range(2):
        (tmp_path / str(number)).mkdir()
    workers = [start_worker(member, tmp_path / str(number)) for number, member in enumerate(group)]
    store = store_of(settings, redis_client)
    users = [user for pair in pairs for user in pair]
    first, _ = replayed([before])
    try:
        produce(settings, before)
        settle(
            lambda: (
                {u: p.events for u, p in store.load(users).items()}
                == {u: reference_events(first, u) for u in users}
            ),
            "the histories applied",
        )
        # The links in three parts, each with a kill -9 of both workers in its midst.
        for part in (links[:50], links[50:100], [*links[100:], *after]):
            producer = threading.Thread(target=produce, args=(settings, part))
            producer.start()
            time.sleep(rng.uniform(0.05, 0.6))
            for number in range(2):
                workers[number].kill()  # SIGKILL: no clean shutdown, no final commit
                workers[number].wait()
                workers[number] = start_worker(group[number], tmp_path / str(number))
            producer.join()
        # Identifies under ids of different partitions reach the identity partition in
        # an order no stream defines, and the survivor of a chain of them follows it:
        # the same people, each with the same state, is what must hold.
        want = people(reference, reference.users())
        differences: list[object] = []

        def merged() -> bool:
            found = people(store, store.users())
            wrong = [ids for ids in want if found.get(ids) != want[ids]]
            differences[:] = [*store.transfers(), *(found.keys() ^ want.keys()), *wrong]
            return not differences

        try:
            settle(merged, "every merge, once")
        except AssertionError:
            raise AssertionError(differences[:3]) from None
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    for ids in want:  # every id leads to its person
        person = next(i for i in ids if not store.resolve([i]))
        assert store.resolve(list(ids)) == {i: person for i in ids if i != person}
    found = read_topics(settings, want=None, timeout=60)
    merges = [r for records in found.values() for r in records if r["kind"] == "identity_merge"]
    assert {frozenset(r["ids"]) for r in merges} >= set(want)  # each person's last merge
    # The kills made outputs go out again (the same ids): the crashes did hit mid-work.
    sent = [r["id"] for records in found.values() for r in records]
    assert len(sent) > len(set(sent)), "no kill landed while outputs were in flight"


def people(store: MemoryStore | RedisStore, users: Iterable[str]) -> dict[frozenset[str], Any]:
    """Each person by all its ids: its state with the ids as a set."""
    found: dict[frozenset[str], Any] = {}
    for profile in store.load(list(users)).values():
        ids = frozenset([profile.user_id, *profile.ids])
        found[ids] = {**(state(profile) or {}), "ids": None}
    return found
