"""An identity change stopped at every step, then done again as the worker redoes what it
did not commit: the state is as if it ran once, and what it sent has the same ids.

Exhaustive over the store writes of one identify and one forget (a crash after the k-th
write, for every k), on the store that hands out copies as Redis does; the integration
tests kill -9 real workers in the middle of merges."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from taggers.bundled import BUNDLED_RULES
from taggers.engine import Engine
from taggers.events import MAX_EVENT_BYTES, BehaviourEvent
from taggers.identity import Change, Identity
from taggers.outputs import Output
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.store import MemoryStore
from tests.support.core import START_MS as START
from tests.support.core import make_event

RULES = load_rules(BUNDLED_RULES)
WRITES = ("save", "absorb", "settle", "forget")


class CrashError(Exception):
    """kill -9, as far as the store can tell: nothing after it happens."""


class CrashingStore:
    """A store that dies at its ``after``-th write (counting from 1)."""

    def __init__(self, store: MemoryStore, after: int) -> None:
        self.store = store
        self.after = after
        self.writes = 0

    def __getattr__(self, name: str) -> Any:
        found = getattr(self.store, name)
        if name not in WRITES:
            return found

        def write(*args: Any, **kwargs: Any) -> Any:
            self.writes += 1
            if self.writes == self.after:
                raise CrashError(name)
            return found(*args, **kwargs)

        return write


def histories() -> MemoryStore:
    store = MemoryStore(copies=True)
    lines = [
        make_event(t, user=u, day=d, amount=a, event_id=f"h{n}").model_dump_json()
        for n, (u, t, d, a) in enumerate(
            (
                ("member:1", "purchase", 0, 199),
                ("wecom:x", "purchase", 1, 99),
                ("member:1", "purchase", 2, 450),
                ("wecom:x", "share", 3, 0),
                ("wecom:y", "purchase", 4, 20),
            )
        )
    ]
    list(Replay(Engine(RULES), store).run(lines, flush=False))
    return store


def worker_like(store: Any, event: BehaviourEvent, sent: dict[str, Output]) -> None:
    """What the worker does with one identity event: change, send (into ``sent``, where
    an id sent again must be the same output), save; again after a recovered change."""
    while True:
        change: Change = Identity(Engine(RULES), store).change(event, f"e:{event.event_id}")
        for output in change.outputs:
            assert sent.setdefault(output.id, output) == output
        change.apply(store)
        if not change.recovered:
            return


def picture(store: MemoryStore, ids: Iterable[str]) -> dict[str, Any]:
    ids = list(ids)
    profiles = store.load(ids)
    return {
        "profiles": {u: p.to_dict() for u, p in sorted(profiles.items())},
        "links": store.resolve(ids),
        "transfers": sorted(store.transfers(ids)),
        "tombstones": store.tombstones(ids),
        "users": sorted(store.users()),
        "audiences": {t: store.tag_members(t) for t in ("buyer", "koc_candidate", "high_value")},
    }


def read(store: MemoryStore, user: str) -> Profile:
    found = store.get(user)
    assert found is not None
    return found


IDS = ("member:1", "wecom:x", "wecom:y", "card:7")
IDENTIFY = make_event("identify", user="member:1", day=5, ids=["wecom:x", "wecom:y", "card:7"])
FORGET = make_event("forget", user="wecom:x", day=6)


@pytest.mark.parametrize("events", [[IDENTIFY], [IDENTIFY, FORGET]], ids=["identify", "forget"])
def test_a_crash_after_any_write_then_the_redo_equals_one_clean_run(
    events: list[Any],
) -> None:
    clean = histories()
    clean_sent: dict[str, Output] = {}
    writes = 0
    for each in events:
        counting = CrashingStore(clean, after=0)
        worker_like(counting, each, clean_sent)
        writes += counting.writes
    assert writes >= 3
    want = picture(clean, IDS)
    for after in range(1, writes + 1):
        store = histories()
        sent: dict[str, Output] = {}
        crashing = CrashingStore(store, after)
        try:
            for each in events:
                worker_like(crashing, each, sent)
        except CrashError:
            pass
        # The redo: the whole fetch again (its offsets were not committed).
        for each in events:
            worker_like(store, each, sent)
        assert picture(store, IDS) == want, f"crash after write {after}"
        assert sent.keys() == clean_sent.keys(), f"crash after write {after}"


def test_an_event_under_the_absorbed_id_during_a_merge_applies_to_the_person_once() -> None:
    # Step 1 done (wecom:x is a link, its profile in a transfer), then the worker of
    # wecom:x's partition applies its next event to the person, then the merge ends.
    store = histories()
    pipeline = Pipeline(Engine(RULES), store, MAX_EVENT_BYTES)
    late = make_event("purchase", user="wecom:x", day=5.5, amount=30, event_id="late")
    first = pipeline.prepare(0, [Record(0, 100, late.model_dump_json().encode(), b"wecom:x")])
    pipeline.save(first)  # wecom:x's own watermark: 0 at 100
    store.absorb([read(store, "wecom:x")], "member:1", cause="e:m", at=START + 6, partition=0)
    # A redelivery of an event the transfer holds already (its worker crashed before it
    # committed) is refused by the transfer's watermark, as it will be by the person's.
    redelivered = pipeline.prepare(0, [Record(0, 100, late.model_dump_json().encode(), b"wecom:x")])
    assert not redelivered.profiles
    assert redelivered.outcomes == {("purchase", "redelivered"): 1}
    racing = make_event("purchase", user="wecom:x", day=6.5, amount=40, event_id="racing")
    batch = pipeline.prepare(0, [Record(0, 101, racing.model_dump_json().encode(), b"wecom:x")])
    assert set(batch.profiles) == {"member:1"} and batch.offsets == {"member:1": {"0@wecom:x": 101}}
    pipeline.save(batch)
    sent: dict[str, Output] = {}
    worker_like(store, make_event("identify", user="member:1", day=7, ids=["wecom:x"]), sent)
    person = read(store, "member:1")
    engine = Engine(RULES)
    assert engine.value_of("orders", person, person.clock) == 5  # 2 + 2 + the racing one
    assert store.offsets("member:1")["0@wecom:x"] == 101  # the later watermark stays
    # A redelivery of either event under wecom:x changes nothing now.
    again = pipeline.prepare(
        0,
        [
            Record(0, 100, late.model_dump_json().encode(), b"wecom:x"),
            Record(0, 101, racing.model_dump_json().encode(), b"wecom:x"),
        ],
    )
    assert not again.profiles and sum(again.outcomes.values()) == 2
