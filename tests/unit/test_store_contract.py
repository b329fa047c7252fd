"""The store contract (taggers.store) as one suite over every store: MemoryStore by reference
and with copies here, RedisStore on a redis-server and on a Redis Cluster with the servers
(those are marked integration: ``-m "not integration"`` runs the memory ones).

What only Redis has (its function library, key layout, a restart losing the functions)
is in tests/integration/test_redis_store.py.
"""

from __future__ import annotations

import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES, EventError, decode_event
from taggers.outputs import Output, output_to_dict
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import (
    LINKED,
    MAX_HOPS,
    REDELIVERED,
    SAVED,
    MemoryStore,
    OperationsStore,
    StoreConflictError,
)
from tests.support.core import FailsOnRefunds, make_event, tag_record
from tests.support.stores import StoreKind

RULES = load_rules(BUNDLED_RULES)
# Ids events accept that look like parts of keys, escapes, or other scripts.
ODD_IDS = ["用户 1", "a b", "%7B", "a/b", "😀", "x" * 128, "a:u:b", "'\"", "tagger:u:", "\\"]


def profile(
    user: str = "u1",
    *,
    tags: tuple[str, ...] = (),
    stage: str | None = None,
    due: int | None = None,
    events: int = 0,
) -> Profile:
    """A profile as the engine would leave it, made by hand (the store reads no rules)."""
    records = {tag: tag_record(rule=tag) for tag in tags}
    return Profile(user, stage=stage, tags=records, due=due, events=events)


def data(found: Profile | None) -> dict[str, Any]:
    """A profile's data as stored (JSON-native), or {} for no profile."""
    return {} if found is None else orjson.loads(orjson.dumps(found.to_dict()))


def read(store: OperationsStore, user: str = "u1") -> Profile:
    """A stored profile (there must be one)."""
    return store.load([user])[user]


# --- load and save ---------------------------------------------------------------------------


def test_a_saved_profile_loads_back_as_saved(store_kind: StoreKind) -> None:
    store = store_kind.open()
    saved = profile("u1", tags=("vip",), stage="new", due=50, events=3)
    saved.aggs["orders"] = [1, 2.5, "x", None, {"a": [1]}]
    assert store.save([saved, profile("u2")]) == {"u1": SAVED, "u2": SAVED}
    fresh = store_kind.open()  # on Redis a new store: nothing kept in the object
    found = fresh.load(["u1", "nobody", "u2"])
    assert set(found) == {"u1", "u2"}  # users never seen are left out
    assert data(found["u1"]) == data(saved)
    assert sorted(fresh.users()) == ["u1", "u2"]
    assert store.save([]) == {}


def test_copy_semantics_are_as_the_store_states(store_kind: StoreKind) -> None:
    store = store_kind.open()
    saved = profile("u1", events=1)
    store.save([saved])
    first, second = read(store), read(store)
    first.events = 99
    first.tags["vip"] = tag_record(since=2, rule="vip")
    if store.hands_out_copies:
        # Changed and not saved: the store, and any other read, is as it was.
        assert second.events == 1 and data(read(store)) == data(profile("u1", events=1))
        saved.events = 7  # nor does a change after its save reach the store
        assert read(store_kind.open()).events == 1
        assert store.tag_members("vip") == []
    else:
        # By reference: every load hands out the stored profile itself.
        assert first is second is saved
        assert read(store).events == 99


def test_the_pipeline_takes_only_a_store_that_hands_out_copies(store_kind: StoreKind) -> None:
    store = store_kind.open()
    if store.hands_out_copies:
        assert Pipeline(Engine(RULES), store, MAX_EVENT_BYTES).store is store
    else:
        with pytest.raises(ValueError, match="hands out copies"):
            Pipeline(Engine(RULES), store, MAX_EVENT_BYTES)


# --- versions: a stale read is refused -------------------------------------------------------


def test_a_second_writer_is_refused_and_leaves_the_user_as_stored(
    copying_store_kind: StoreKind,
) -> None:
    store, zombie = copying_store_kind.open(), copying_store_kind.open()
    store.save([profile("u1", tags=("vip",), due=100), profile("u2")], partition=2)
    mine, stale = read(store), read(zombie)
    mine.events = 1
    assert store.save([mine], partition=2, offsets={"u1": {"2": 5}}) == {"u1": SAVED}
    # The zombie's view: the tag gone, no deadline, a later offset (as a stale one may say).
    del stale.tags["vip"]
    stale.due, stale.events = None, 50
    other = read(zombie, "u2")
    other.events = 4
    with pytest.raises(StoreConflictError) as caught:
        zombie.save([stale, other], partition=2, offsets={"u1": {"2": 9}})
    assert caught.value.user_ids == ["u1"]
    assert read(store).events == 1 and store.offsets("u1") == {"2": 5}
    assert store.tag_members("vip") == ["u1"] and store.due(100, partition=2) == ["u1"]
    assert read(store, "u2").events == 4  # the rest of the batch is written


def test_one_store_refuses_a_write_from_a_read_older_than_its_own_last_write(
    copying_store_kind: StoreKind,
) -> None:
    # The worker may read a user for two batches of one fetch (an event topic and the
    # re-keyed topic): the read a write came from decides, not the store's last write.
    store = copying_store_kind.open()
    store.save([profile("u1")])
    first, second = read(store), read(store)
    first.events, second.events = 10, 99
    store.save([first])
    with pytest.raises(StoreConflictError):
        store.save([second])
    first.events = 15
    store.save([first])  # the writer's own next write is fine: it knows what it wrote
    assert read(store).events == 15


def test_a_new_profile_for_a_stored_user_is_refused(copying_store_kind: StoreKind) -> None:
    store = copying_store_kind.open()
    store.save([profile("u1", events=1)])
    with pytest.raises(StoreConflictError):
        copying_store_kind.open().save([profile("u1", events=2)])
    assert read(store).events == 1


def test_without_copies_there_is_no_stale_read_and_the_last_write_stays() -> None:
    store = MemoryStore()
    store.save([profile("u1", events=1)])
    assert store.save([profile("u1", events=2)]) == {"u1": SAVED}
    assert read(store).events == 2


# --- offsets: a redelivery changes nothing ---------------------------------------------------


def test_a_redelivered_write_changes_nothing(store_kind: StoreKind) -> None:
    store = store_kind.open()
    assert store.save([profile(events=1)], partition=3, offsets={"u1": {"3": 41}}) == {"u1": SAVED}
    assert store.offsets("u1") == {"3": 41} and store.offsets("nobody") == {}
    replayed = read(store)
    replayed.events = 2
    assert store.save([replayed], partition=3, offsets={"u1": {"3": 41}}) == {"u1": REDELIVERED}
    if store.hands_out_copies:  # (by reference, the change was in the store all along)
        assert read(store_kind.open()).events == 1
    # Offsets compare as numbers, not text: 100 is past 41.
    again = read(store)
    again.events = 2
    assert store.save([again], partition=3, offsets={"u1": {"3": 100}}) == {"u1": SAVED}
    assert store.offsets("u1") == {"3": 100} and read(store_kind.open()).events == 2


def test_a_write_with_any_known_position_changes_nothing(store_kind: StoreKind) -> None:
    store = store_kind.open()
    assert store.save([profile(events=1)], offsets={"u1": {"k0": 5, "k1": 3}}) == {"u1": SAVED}
    again = read(store)
    again.events = 2
    # k0 moves on, k1 does not: one of its events would count twice, so none is written.
    assert store.save([again], offsets={"u1": {"k0": 9, "k1": 3}}) == {"u1": REDELIVERED}
    assert store.offsets("u1") == {"k0": 5, "k1": 3}
    # A write with no offset (a timer sweep) is written and moves none.
    assert store.save([read(store)]) == {"u1": SAVED}
    assert store.offsets("u1") == {"k0": 5, "k1": 3}
    profiles, applied = store.load_applied({"u1": ["k1", "k7"], "u2": ["0"]})
    assert applied == {"u1": {"k1": 3}} and set(profiles) == {"u1"}


# --- deadlines -------------------------------------------------------------------------------


def test_deadlines_are_indexed_per_partition(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile("u1", due=100)], partition=2)
    assert store.due(99, partition=2) == []
    assert store.due(100, partition=2) == ["u1"]
    assert store.due(100, partition=0) == []
    store.drop_deadlines(["u1"], partition=2)
    assert store.due(100, partition=2) == []


def test_due_users_stay_due_until_saved_later_or_dropped(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile(f"u{n}", due=100 - n) for n in range(5)])
    assert store.due(100, limit=3) == ["u4", "u3", "u2"]  # earliest first
    # Handed out, not taken: a sweep whose save fails finds them again.
    assert store.due(100) == ["u4", "u3", "u2", "u1", "u0"]
    later = read(store, "u4")
    later.due = 500
    none = read(store, "u3")
    none.due = None
    store.save([later, none])
    store.drop_deadlines(["u2"])
    assert store.due(100) == ["u1", "u0"]
    assert store.due(500) == ["u1", "u0", "u4"]


# --- audiences, stages, scans ----------------------------------------------------------------


def test_audiences_page_by_user_id(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile(f"u{n}", tags=("vip",)) for n in range(7)])
    assert store.tag_members("vip") == [f"u{n}" for n in range(7)]
    assert store.tag_members("vip", limit=3) == ["u0", "u1", "u2"]
    assert store.tag_members("vip", after="u2", limit=3) == ["u3", "u4", "u5"]
    assert store.tag_members("vip", after="u5", limit=3) == ["u6"]
    assert store.tag_members("vip", after="u6") == [] and store.tag_members("none") == []
    leaving = read(store, "u0")
    del leaving.tags["vip"]
    store.save([leaving])
    assert "u0" not in store.tag_members("vip")


def test_population_counts_stages_and_audiences(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save(
        [
            profile("u1", tags=("vip", "new"), stage="active"),
            profile("u2", tags=("vip",), stage="active"),
            profile("u3", tags=("gone",), stage="lapsed"),
            profile("u4"),
        ]
    )
    moved = read(store, "u3")
    moved.tags.clear()
    moved.stage = "active"
    store.save([moved])
    by_stage, by_tag = store.population(["active", "lapsed", "never"])
    assert by_stage == {"active": 3, "lapsed": 0, "never": 0}
    assert by_tag == {"gone": 0, "new": 1, "vip": 2}  # an emptied audience is there with 0


def test_a_paged_scan_meets_every_user_and_resumes_from_its_cursor(
    store_kind: StoreKind,
) -> None:
    store = store_kind.open()
    users = [f"u{n}" for n in range(40)]
    store.save([profile(user) for user in users])
    cursor, seen = "0", list[str]()
    while True:
        cursor, page = store_kind.open().users_page(cursor, 7)  # a restart between pages
        seen += page
        if cursor == "0":
            break
        if len(seen) < 8:
            store.save([profile("late")])  # stored during the scan: may or may not be met
    assert set(seen) - {"late"} == set(users)


def test_odd_but_valid_ids_round_trip(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile(user, tags=("vip",), due=10) for user in ODD_IDS], partition=1)
    assert sorted(store.users()) == sorted(ODD_IDS)
    loaded = store_kind.open().load(ODD_IDS)
    assert {user: found.user_id for user, found in loaded.items()} == {u: u for u in ODD_IDS}
    assert store.tag_members("vip") == sorted(ODD_IDS)
    assert sorted(store.due(10, partition=1)) == sorted(ODD_IDS)
    cursor, seen = "0", set[str]()
    while True:
        cursor, page = store.users_page(cursor, 3)
        seen.update(page)
        if cursor == "0":
            break
    assert seen == set(ODD_IDS)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.text(min_size=1, max_size=40))
def test_every_id_events_accept_is_a_key_every_store_keeps(
    store_kind: StoreKind, user_id: str
) -> None:
    raw = orjson.dumps({"event_id": "e1", "user_id": user_id, "type": "custom", "ts": 0})
    try:
        decode_event(raw)
    except EventError as error:
        assert error.reason == "schema"
        return  # braces, control characters...: refused before any store sees them
    store = store_kind.emptied()
    store.save([profile(user_id, tags=("t",))])
    assert list(store_kind.open().load([user_id])) == [user_id]
    assert list(store.users()) == [user_id] == store.tag_members("t")


def test_ping_answers(store_kind: StoreKind) -> None:
    store_kind.open().ping()


# --- identity: links, forgets, tombstones ---------------------------------------------------


def scanned(store: OperationsStore) -> list[str]:
    """Every user a full paged scan returns, sorted."""
    cursor, seen = "0", set[str]()
    while True:
        cursor, page = store.users_page(cursor, 3)
        seen.update(page)
        if cursor == "0":
            return sorted(seen)


def assert_no_trace(store: OperationsStore, *gone: str, partitions: tuple[int, ...] = (0,)) -> None:
    """None of these ids is a person anywhere a reader or the gauges look."""
    assert store.load(list(gone)) == {}
    assert not set(gone) & set(store.users()) and not set(gone) & set(scanned(store))
    for tag in ("vip", "new"):
        assert not set(gone) & set(store.tag_members(tag))
    for partition in partitions:
        assert not set(gone) & set(store.due(10**15, partition=partition))
    assert all(store.offsets(user) == {} for user in gone)


def stored_stage_counts(store: OperationsStore) -> dict[str, int]:
    return store.population(["active", "lapsed"])[0]


def test_a_link_removes_every_trace_of_the_id_it_replaces(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save(
        [profile("q", tags=("vip",), stage="active", due=100, events=2)],
        partition=2,
        offsets={"q": {"2": 5}},
    )
    store.save([profile("p", tags=("vip", "new"), stage="active", due=90)])
    survivor, absorbed = read(store, "p"), read(store, "q")
    survivor.events = 2
    # Saved with partition 0: q's deadline, saved with partition 2, goes too.
    got = store.save([survivor], links={"q": "p"}, absorbed=[absorbed])
    assert got == {"p": SAVED, "q": LINKED}
    store = store_kind.open()
    assert_no_trace(store, "q", partitions=(0, 2))
    assert sorted(store.users()) == ["p"] == scanned(store)
    assert store.tag_members("vip") == ["p"] and store.due(100) == ["p"]
    assert store.population(["active"]) == ({"active": 1}, {"new": 1, "vip": 1})
    assert store.resolve(["q", "p", "nobody"]) == {"q": "p"}
    found = store.lookup({"q": ["2"], "p": ["0"], "nobody": []})
    assert (found.links, found.applied, found.tombstones) == ({"q": "p"}, {}, {})
    assert set(found.profiles) == {"p"} and read(store, "p").events == 2


def test_absorbing_keeps_each_ids_transfer_beside_its_link_until_settled(
    store_kind: StoreKind,
) -> None:
    store = store_kind.open()
    store.save(
        [profile("q", tags=("vip",), stage="active", due=100, events=3)],
        partition=2,
        offsets={"q": {"2": 5}},
    )
    store.save([profile("q2", events=1)], offsets={"q2": {"1": 9, "k0@x": 4}})
    store.save([profile("p", events=1)])
    absorbed = [read(store, "q"), read(store, "q2"), profile("new")]
    store.absorb(absorbed, "p", cause="e:1", at=77, partition=0)
    store = store_kind.open()  # what a worker that starts now finds
    assert_no_trace(store, "q", "q2", "new", partitions=(0, 2))
    assert store.resolve(["q", "q2", "new"]) == {"q": "p", "q2": "p", "new": "p"}
    kept = store.transfers()
    assert sorted(kept) == ["new", "q", "q2"] and store.transfers(["q", "nobody"]).keys() == {"q"}
    q = kept["q"]
    assert q.profile is not None and data(q.profile) == data(
        profile("q", tags=("vip",), stage="active", due=100, events=3)
    )
    # Its own watermarks named after it; those it carried keep their names.
    assert (q.offsets, kept["q2"].offsets) == ({"2@q": 5}, {"1@q2": 9, "k0@x": 4})
    assert (q.cause, q.at) == ("e:1", 77) and kept["new"].profile is None
    store.settle(["q", "new"])
    assert sorted(store_kind.open().transfers()) == ["q2"]
    store.forget(["q2"], 80)  # a forget leaves no transfer of the id behind
    assert store_kind.open().transfers() == {}


def test_absorbing_an_id_changed_since_read_is_refused(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile("q", events=1)])
    store.save([profile("p", events=1)])
    if not store.hands_out_copies:
        return  # a store of references has no stale read to refuse
    stale = read(store, "q")
    fresh = read(store, "q")
    fresh.events = 2
    store.save([fresh])
    with pytest.raises(StoreConflictError):
        store.absorb([stale], "p", cause="e:1", at=1)
    assert read(store, "q").events == 2 and store.resolve(["q"]) == {}
    assert store.transfers(["q"]) == {}


def test_a_link_for_an_id_without_a_profile_just_writes_the_link(
    store_kind: StoreKind,
) -> None:
    store = store_kind.open()
    store.save([profile("p", tags=("vip",))])
    assert store.save([], links={"x": "p", "y": "p"}) == {"x": LINKED, "y": LINKED}
    assert store.resolve(["x", "y", "p"]) == {"x": "p", "y": "p"}
    assert sorted(store.users()) == ["p"] == scanned(store)
    assert store.tag_members("vip") == ["p"]


def test_chains_of_links_lead_to_the_person(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile("a", events=1)])
    store.save([profile("c", events=2)], links={"b": "c"})
    store.save([], links={"a": "b"}, absorbed=list(store.load(["a"]).values()))
    store.save([], links={"z": "a"})  # a link to a link: the chain z -> a -> b -> c
    fresh = store_kind.open()
    assert fresh.resolve(["a", "b", "c", "z"]) == {"a": "c", "b": "c", "z": "c"}
    assert fresh.lookup({"z": [], "a": [], "c": []}).links == {"a": "c", "z": "c"}
    assert sorted(fresh.users()) == ["c"]
    # A cycle (no caller makes one) stops after MAX_HOPS links rather than hanging.
    store.save([], links={"x": "y"})
    store.save([], links={"y": "x"})
    assert set(fresh.resolve(["x"]).values()) <= {"x", "y"}
    chain = [f"n{i}" for i in range(MAX_HOPS + 3)]
    store.save([], links=dict(itertools.pairwise(chain)))
    assert fresh.resolve([chain[0]]) == {chain[0]: chain[MAX_HOPS]}


def test_an_id_is_never_saved_and_linked_at_once_nor_linked_to_itself(
    store_kind: StoreKind,
) -> None:
    store = store_kind.open()
    with pytest.raises(ValueError, match="saved and linked"):
        store.save([profile("p")], links={"p": "q"})
    with pytest.raises(ValueError, match="itself"):
        store.save([], links={"q": "q"})
    assert list(store.users()) == [] and store.resolve(["p", "q"]) == {}


def test_a_link_from_a_stale_read_is_refused_and_the_id_stays_as_stored(
    copying_store_kind: StoreKind,
) -> None:
    store, other = copying_store_kind.open(), copying_store_kind.open()
    store.save([profile("q", tags=("vip",), due=100, events=1)], partition=2)
    store.save([profile("p")])
    stale = read(store, "q")
    moved = read(other, "q")  # another writer applies an event to q meanwhile
    moved.events, moved.tags["new"] = 2, tag_record(rule="new")
    other.save([moved], partition=2)
    with pytest.raises(StoreConflictError) as caught:
        store.save([read(store, "p")], links={"q": "p"}, absorbed=[stale])
    assert caught.value.user_ids == ["q"]
    assert read(store, "q").events == 2 and store.resolve(["q"]) == {}
    assert store.tag_members("vip") == ["q"] == store.tag_members("new")
    assert store.due(100, partition=2) == ["q"]


def test_a_refused_profile_writes_no_link(copying_store_kind: StoreKind) -> None:
    store, other = copying_store_kind.open(), copying_store_kind.open()
    store.save([profile("p"), profile("q", tags=("vip",))])
    stale = read(store, "p")
    other.save([read(other, "p")])
    with pytest.raises(StoreConflictError) as caught:
        store.save([stale], links={"q": "p"}, absorbed=[read(store, "q")])
    assert caught.value.user_ids == ["p"]
    assert store.resolve(["q"]) == {} and store.tag_members("vip") == ["q"]


def test_a_linked_id_takes_no_profile_from_a_writer_that_read_it_before(
    copying_store_kind: StoreKind,
) -> None:
    store = copying_store_kind.open()
    store.save([profile("p"), profile("q", events=1)])
    stale = read(store, "q")
    store.save([], links={"q": "p"}, absorbed=[read(store, "q")])
    stale.events = 5
    with pytest.raises(StoreConflictError):
        copying_store_kind.open().save([stale])
    with pytest.raises(StoreConflictError):  # nor a new profile: the id is a link
        copying_store_kind.open().save([profile("q", tags=("vip",))])
    assert store.resolve(["q"]) == {"q": "p"} and store.tag_members("vip") == []
    assert_no_trace(store, "q")


def test_a_forget_removes_every_trace_and_leaves_a_tombstone(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save(
        [profile("p", tags=("vip", "new"), stage="active", due=100)],
        partition=1,
        offsets={"p": {"1": 7}},
    )
    store.save([profile("q", tags=("vip",), stage="lapsed", due=80)], partition=2)
    store.save([], links={"q": "p"}, absorbed=[read(store, "q")])
    store.save([], links={"r": "p"})
    store.save([profile("other", tags=("vip",), stage="active", due=100)])
    store.forget(["p", "q", "r"], 500, partition=3)
    fresh = store_kind.open()
    assert_no_trace(fresh, "p", "q", "r", partitions=(0, 1, 2, 3))
    assert fresh.resolve(["p", "q", "r"]) == {}
    assert sorted(fresh.users()) == ["other"] == scanned(fresh)
    assert fresh.population(["active", "lapsed"]) == (
        {"active": 1, "lapsed": 0},
        {"new": 0, "vip": 1},
    )
    assert fresh.tombstones(["p", "q", "r", "other"]) == {"p": 500, "q": 500, "r": 500}
    found = fresh.lookup({"p": ["1"], "q": [], "other": []})
    assert found.tombstones == {"p": 500, "q": 500} and found.links == {}
    assert set(found.profiles) == {"other"} and found.applied == {}
    store.forget(["p"], 500)  # a redelivered forget changes nothing
    assert fresh.tombstones(["p"]) == {"p": 500}


def test_a_tombstone_keeps_the_later_forget_time(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.forget(["p"], 500)
    store.forget(["p"], 300)
    assert store.tombstones(["p"]) == {"p": 500}
    store.forget(["p", "q"], 900)
    assert store.tombstones(["p", "q", "x"]) == {"p": 900, "q": 900}


def test_a_forgotten_id_may_become_a_person_again(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile("p", events=4)])
    stale = read(store, "p")
    store.forget(["p"], 500)
    if store.hands_out_copies:  # a write read before the forget does not bring it back
        stale.events = 5
        with pytest.raises(StoreConflictError):
            store.save([stale])
    reborn = profile("p", tags=("vip",), events=1)
    reborn.reborn = 500
    assert store.save([reborn]) == {"p": SAVED}
    found = store_kind.open().lookup({"p": []})
    assert found.tombstones == {"p": 500} and found.profiles["p"].reborn == 500
    assert store.tag_members("vip") == ["p"] and list(store.users()) == ["p"]


def test_a_scan_meets_every_user_that_stays_while_others_are_linked_or_forgotten(
    store_kind: StoreKind,
) -> None:
    store = store_kind.open()
    users = [f"u{n:02}" for n in range(40)]
    store.save([profile(user) for user in users])
    cursor, page = store.users_page("0", 7)
    seen = list(page)
    # Mid-scan, two ids already met and two not yet go, one of each linked, one forgotten.
    met, ahead = seen[:2], [user for user in users if user not in seen][-2:]
    store.save([], links={met[0]: ahead[-1] + "x", ahead[0]: met[-1] + "x"})
    store.forget([met[1], ahead[1]], 5)
    while cursor != "0":
        cursor, page = store.users_page(cursor, 7)
        seen += page
    gone = {*met, *ahead}
    assert set(users) - gone <= set(seen)
    assert not set(ahead) & set(seen)  # removed before the scan reached them
    assert sorted(store.users()) == sorted(set(users) - gone)


def test_odd_ids_link_and_are_forgotten(store_kind: StoreKind) -> None:
    store = store_kind.open()
    store.save([profile(user, tags=("vip",), due=10) for user in ODD_IDS], partition=1)
    person, *others = ODD_IDS
    store.save([], links=dict.fromkeys(others, person), absorbed=list(store.load(others).values()))
    assert store.resolve(ODD_IDS) == dict.fromkeys(others, person)
    assert list(store.users()) == [person] == store.tag_members("vip")
    store.forget(ODD_IDS, 7)
    assert_no_trace(store_kind.open(), *ODD_IDS, partitions=(0, 1))
    assert store.tombstones(ODD_IDS) == dict.fromkeys(ODD_IDS, 7)


def test_a_profile_stored_before_the_identity_fields_loads_with_their_defaults() -> None:
    stored = orjson.loads(orjson.dumps(profile("u1", events=3).to_dict()))
    for name in ("ids", "consent", "reborn"):
        del stored[name]
    loaded = Profile.from_dict(stored)
    assert (loaded.ids, loaded.consent, loaded.reborn, loaded.events) == ([], None, None, 3)


# --- the core over each store ----------------------------------------------------------------


def test_a_replay_on_each_store_equals_the_replay_in_memory(store_kind: StoreKind) -> None:
    lines = list(simulate(SimulationConfig(users=60, days=200, seed=9)))
    memory, store = MemoryStore(), store_kind.open()
    expected = [
        output_to_dict(o)
        for o in Replay(Engine(RULES), memory).run(lines)
        if not isinstance(o, BadLine)
    ]
    got = [
        output_to_dict(o)
        for o in Replay(Engine(RULES), store).run(lines)
        if not isinstance(o, BadLine)
    ]
    assert len(expected) > 500
    assert got == expected
    assert sorted(store.users()) == sorted(memory.users())
    fresh = store_kind.open()  # read back through a new store: nothing cached
    stored = fresh.load(sorted(memory.users()))
    for user in memory.users():
        assert data(stored[user]) == data(memory.get(user))
    for tag in ("high_value", "rfm_important_value", "member_regular"):
        assert fresh.tag_members(tag) == memory.tag_members(tag)
    # The stage and audience sizes the worker's gauges report.
    stages = list(RULES.lifecycle.stages) if RULES.lifecycle else []
    by_stage, by_tag = fresh.population(stages)
    profiles = [p for u in memory.users() if (p := memory.get(u)) is not None]
    assert by_stage == {s: sum(p.stage == s for p in profiles) for s in stages}
    assert by_tag == {t: len(memory.tag_members(t)) for t in by_tag}
    assert set(by_tag) == {t for p in profiles for t in p.tags} | set(by_tag)
    assert all(by_tag[t] > 0 for p in profiles for t in p.tags)


def test_bad_lines_do_not_reach_the_store(store_kind: StoreKind) -> None:
    store = store_kind.open()
    outputs = list(Replay(Engine(RULES), store).run(["not json", '{"user_id": 1}']))
    assert all(isinstance(o, BadLine) for o in outputs) and len(outputs) == 2
    assert list(store.users()) == []


def test_an_event_the_engine_fails_on_goes_to_the_dlq_and_leaves_no_trace(
    copying_store_kind: StoreKind,
) -> None:
    good = [make_event("purchase", amount=100), make_event("purchase", day=2, amount=50)]
    refund = make_event("refund", day=1, amount=100)
    stream = [good[0], refund, good[1]]
    records = [
        Record(0, n, event.model_dump_json().encode(), event.user_id.encode())
        for n, event in enumerate(stream)
    ]
    pipeline = Pipeline(FailsOnRefunds(RULES), copying_store_kind.open(), MAX_EVENT_BYTES)

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
    assert read(copying_store_kind.open()) == want


def test_events_the_store_already_has_still_move_the_partitions_watermark(
    copying_store_kind: StoreKind,
) -> None:
    # A worker taking over a partition whose last events the previous owner applied (but
    # did not commit) sees them again: its event-time sweeps must still reach their time.
    events = [make_event("purchase", user=u, day=d, amount=10) for u, d in (("u1", 1), ("u2", 5))]
    records = [
        Record(0, n, event.model_dump_json().encode(), event.user_id.encode())
        for n, event in enumerate(events)
    ]
    first = Pipeline(Engine(RULES), copying_store_kind.open(), MAX_EVENT_BYTES)
    first.save(first.prepare(0, records))

    taker = Pipeline(Engine(RULES), copying_store_kind.open(), MAX_EVENT_BYTES)
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
    copying_store_kind: StoreKind,
) -> None:
    store = copying_store_kind.open()
    engine = Engine(RULES)
    first = {u: engine.new_profile(u) for u in ("u1", "u2")}
    for user, made in first.items():
        engine.apply(made, make_event("purchase", user=user, amount=100))
    store.save(first.values())
    due = max(p.due or 0 for p in first.values())
    pipeline = Pipeline(_FailsOnDeadlines(RULES), store, MAX_EVENT_BYTES)

    batch = pipeline.sweep(0, due)
    pipeline.save(batch)

    assert list(batch.profiles) == ["u1"]  # u1's timers fired; u2's profile is untouched
    assert read(store, "u2") == first["u2"]
    assert store.due(due) == [] and pipeline.sweep(0, due).profiles == {}


def test_keyed_and_net_states_load_back_and_read_the_same(
    store_kind: StoreKind, tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("keyed")
    (directory / "rules.yaml").write_text(
        "aggregates:\n"
        "  by_category: {count: purchase, by: props.category}\n"
        "  spend_by_category: {sum: props.amount, of: purchase, by: props.category, window: 30d}\n"
        "  net_30d: {sum: props.amount, of: purchase, minus: refund, window: 30d}\n"
        "  beauty: {avg: props.amount, of: purchase, where: \"props.category == '美妆'\"}\n",
        encoding="utf-8",
    )
    engine = Engine(load_rules(directory))
    saved = engine.new_profile("u1")
    for event in [
        make_event("purchase", day=0, amount=30, category="美妆"),
        make_event("purchase", day=3, amount=12.5, category="食品"),
        make_event("refund", day=4, amount=10, category="食品"),
    ]:
        engine.apply(saved, event)
    store = store_kind.open()
    store.save([saved])
    loaded = read(store_kind.open())
    assert data(loaded) == data(saved)
    values = engine.aggregate_values(loaded)
    assert values == engine.aggregate_values(saved)
    assert values["spend_by_category"] == {"美妆": 30.0, "食品": 12.5}
    assert values["net_30d"] == 32.5
